"""The repository stands alone: no file refers to a path outside it (issue 21, item 9).

A fresh clone (or `git archive`) must run its own tests, so tests and sources keep what they
read inside the tree: the vendor's reference data is in tests/vendor/.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import VENDOR

ROOT = Path(__file__).resolve().parents[1]
# Not the project's files: tools' caches, environments, builds, and the vendor's own data.
SKIPPED_DIRS = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    ".reports",
    "build",
    "dist",
    ".work",
}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".ini", ".cfg", ".txt", ".yml", ".yaml", ".json", ".mako"}
TEXT_NAMES = {"Dockerfile", "run", ".dockerignore", ".gitignore"}
# `../` (a sibling of the checkout), the reference folder's old home, this machine's layout.
OUTSIDE = re.compile(r"\.\./|\bshared/api\b|/work/")


def project_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*")):
        parts = path.relative_to(ROOT).parts
        if any(p in SKIPPED_DIRS or p.endswith(".egg-info") for p in parts[:-1]):
            continue
        # This file spells out the ways out, to check that they are seen.
        if path.is_relative_to(VENDOR) or path == Path(__file__).resolve() or not path.is_file():
            continue
        if path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            yield path


def textual_escapes(text: str) -> list[str]:
    """Lines naming a path outside the repository."""
    return [line.strip() for line in text.splitlines() if OUTSIDE.search(line)]


def _levels_up(node: ast.expr) -> int | None:
    """How far above its file `Path(__file__)...` climbs; None if not such an expression."""
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id == "Path" and node.args:
            first = node.args[0]
            return 0 if isinstance(first, ast.Name) and first.id == "__file__" else None
        if isinstance(node.func, ast.Attribute):  # .resolve(), .absolute()
            return _levels_up(node.func.value)
        return None
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        below = _levels_up(node.value)
        return None if below is None else below + 1
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parents"
        and isinstance(node.slice, ast.Constant)
    ):
        below = _levels_up(node.value.value)
        index = node.slice.value
        return None if below is None or not isinstance(index, int) else below + index + 1
    return None


def climbs_out(source: str, depth: int) -> list[int]:
    """Lines where `Path(__file__)` climbs above the repository root, for a file `depth`
    folders below it (tests/conftest.py: 1)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.expr):
            up = _levels_up(node)
            if up is not None and up > depth + 1:
                lines.append(node.lineno)
    return sorted(set(lines))


def test_the_checks_see_the_ways_out_of_the_repository() -> None:
    assert textual_escapes('SPEC = "../shared/api/analytics-openapi.json"\n')
    assert textual_escapes("see `../shared/api/README.md`\n")
    assert textual_escapes('open("/work/shared/api/samples/x.json")\n')
    assert not textual_escapes("keep it in tests/vendor/samples/x.json\n")
    old = 'SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "api"\n'
    assert climbs_out(old, depth=1) == [1]
    assert climbs_out("X = Path(__file__).parent.parent.parent\n", depth=1) == [1]
    assert climbs_out("X = Path(__file__).resolve().parents[2]\n", depth=1) == [1]
    assert climbs_out("ROOT = Path(__file__).resolve().parents[1]\n", depth=1) == []
    assert climbs_out("HERE = Path(__file__).parent / 'vendor'\n", depth=1) == []


def test_no_file_refers_to_a_path_outside_the_repository() -> None:
    found = []
    for path in project_files():
        relative = path.relative_to(ROOT)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{relative}: {line}" for line in textual_escapes(text)]
        if path.suffix == ".py":
            depth = len(relative.parts) - 1
            found += [f"{relative}:{n} climbs out" for n in climbs_out(text, depth)]
    assert found == [], "\n".join(found)
    assert any(p.name == "conftest.py" for p in project_files())  # the walk saw the tests


@pytest.mark.parametrize(
    "name",
    [
        "analytics-openapi.json",
        "README.md",
        "samples/spec_account_series_hour.json",
        "samples/live_streams_series_day.json",
    ],
)
def test_the_vendor_reference_data_is_in_the_repository(name: str) -> None:
    assert (VENDOR / name).is_file()
    assert VENDOR.is_relative_to(ROOT)
