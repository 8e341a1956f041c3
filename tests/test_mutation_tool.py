"""The mutation tool makes the one-node mutants it promises, and each one compiles."""

from __future__ import annotations

from bench.mutation import mutants

SOURCE = """
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    size: int


def final(end: int, settle: int, fetched: int, strict: bool = True) -> bool:
    record(end)
    if not strict or end + settle <= fetched:
        return True
    return False


def record(value: int) -> None:
    pass
"""


def test_each_operator_and_constant_gives_one_mutant() -> None:
    found = mutants("m.py", SOURCE)
    described = sorted((m.line, m.description) for m in found)
    assert described == [
        (10, "True -> False"),
        (11, "call statement removed"),
        (12, "Add -> Sub"),
        (12, "LtE -> Lt"),
        (12, "Or -> And"),
        (12, "not x -> x"),
        (13, "True -> False"),
        (14, "False -> True"),
    ]
    for mutant in found:
        compile(mutant.source, "m.py", "exec")
        assert mutant.source != SOURCE
    namespace: dict[str, object] = {}
    lte = next(m for m in found if m.description == "LtE -> Lt")
    exec(compile(lte.source, "m.py", "exec"), namespace)
    final = namespace["final"]
    assert callable(final)
    assert final(10, 5, 15) is False  # the boundary the mutant moves


def test_a_partial_run_is_recorded_as_a_section_of_its_own() -> None:
    from bench.mutation import Mutant, as_section, record

    survivor = Mutant("archiver/rules/plan.py", 1, "Lt -> LtE", "")
    text = record([("archiver/rules/plan.py", 3, 2, [survivor])], 12.0)
    section = as_section(text, ["archiver/rules/plan.py"])
    assert section.startswith("## Run of `archiver/rules/plan.py`\n")
    assert "# Mutation testing record" not in section
    assert "\n### Survivors\n" in section
    assert "| `archiver/rules/plan.py` |" in section
    assert "- `archiver/rules/plan.py:1` Lt -> LtE" in section
