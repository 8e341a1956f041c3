"""Mutation testing of the core: one-node mutants of the planner, store, sync and name rules.

Each mutant changes one operator or constant of one module (`<` to `<=`, `and` to `or`, `not x`
to `x`, `True` to `False`, `+` to `-`, a call statement removed), then the fast tests that guard
that module run against it. A mutant the tests do not fail is a *survivor*: either a missing
test, or an equivalent mutant to argue in the record. Run:

    .venv/bin/python -m bench.mutation                 # every target, rewrites bench/MUTATION.md
    .venv/bin/python -m bench.mutation --module archiver/rules/plan.py   # adds a section to it

It rewrites the module under test in place while a mutant runs and always puts it back; do not
edit the tree meanwhile. Not part of `.ci/run`: it takes minutes per module.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.mutation_targets import TARGETS

ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).resolve().parent / "MUTATION.md"

_SWAPS: dict[type[ast.AST], type[ast.AST]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.And: ast.Or,
    ast.Or: ast.And,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
}

Change = Callable[[ast.AST], ast.AST]


def _options(node: ast.AST) -> list[tuple[str, Change]]:
    """The one-node changes this node admits."""
    options: list[tuple[str, Change]] = []
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            swap = _SWAPS.get(type(op))
            if swap is not None:

                def compare(n: ast.AST, i: int = i, swap: type[ast.AST] = swap) -> ast.AST:
                    assert isinstance(n, ast.Compare)
                    n.ops[i] = swap()  # type: ignore[call-overload]
                    return n

                options.append((f"{type(op).__name__} -> {swap.__name__}", compare))
    elif isinstance(node, ast.BoolOp | ast.BinOp) and type(node.op) in _SWAPS:
        swap = _SWAPS[type(node.op)]

        def operator(n: ast.AST, swap: type[ast.AST] = swap) -> ast.AST:
            n.op = swap()  # type: ignore[attr-defined]
            return n

        options.append((f"{type(node.op).__name__} -> {swap.__name__}", operator))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        options.append(("not x -> x", lambda n: n.operand))  # type: ignore[attr-defined]
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        options.append((f"{node.value} -> {not node.value}", lambda n: ast.Constant(not n.value)))  # type: ignore[attr-defined]
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        options.append(("call statement removed", lambda n: ast.Pass()))
    return options


class _Mutator(ast.NodeTransformer):
    """Walks the tree in one fixed order; applies option `option` at candidate `position`."""

    def __init__(self, position: int = -1, option: int = 0) -> None:
        self.position = position
        self.option = option
        self.seen: list[tuple[int, list[str]]] = []

    def visit(self, node: ast.AST) -> ast.AST:
        options = _options(node)
        if options:
            self.seen.append((getattr(node, "lineno", 0), [d for d, _ in options]))
            if len(self.seen) - 1 == self.position:
                return ast.copy_location(options[self.option][1](node), node)
        return self.generic_visit(node)


@dataclass(frozen=True)
class Mutant:
    """One changed node: where, what, and the module's source with the change."""

    path: str
    line: int
    description: str
    source: str


def mutants(path: str, text: str) -> list[Mutant]:
    """Every one-node mutant of the module `text`, in source order."""
    tree = ast.parse(text)
    survey = _Mutator()
    survey.visit(copy.deepcopy(tree))
    found: list[Mutant] = []
    source_lines = text.splitlines()
    for position, (line, descriptions) in enumerate(survey.seen):
        if source_lines[line - 1].lstrip().startswith("@"):
            continue  # decorator arguments (`frozen=True`) are declarations, not behaviour
        for option, description in enumerate(descriptions):
            mutated = _Mutator(position, option).visit(copy.deepcopy(tree))
            source = ast.unparse(ast.fix_missing_locations(mutated))
            found.append(Mutant(path, line, description, source))
    return found


def _run_tests(tests: list[str], marks: str) -> int:
    # PYTHONPATH: the `archiver` processes some tests start must import this (mutated) tree,
    # not whatever installation the interpreter would find from their working directory.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": path}
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-x",
                "-q",
                # A mutant that hangs one test (a retry loop that never ends) is killed in a
                # minute, not after the suite's own 15-minute limit.
                "--timeout=60",
                "-p",
                "no:cacheprovider",
                "-m",
                marks,
                *tests,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124  # a mutant that hangs the tests counts as killed
    return result.returncode


def run(
    modules: list[str], limit: int | None, marks: str = "not completeness", every: int = 1
) -> list[tuple[str, int, int, list[Mutant]]]:
    """Mutate each module in turn (every `every`-th mutant, from the first); returns (module,
    mutants, killed, survivors)."""
    results = []
    for module in modules:
        tests = TARGETS[module]
        path = ROOT / module
        original = path.read_text()
        if _run_tests(tests, marks) != 0:
            raise SystemExit(f"the tests of {module} fail before any mutation: fix them first")
        candidates = mutants(module, original)[::every][:limit]
        survivors: list[Mutant] = []
        try:
            for number, mutant in enumerate(candidates, 1):
                path.write_text(mutant.source)
                code = _run_tests(tests, marks)
                if code == 0:
                    survivors.append(mutant)
                    # Named at once: a long run's survivors can be worked on while it goes on.
                    sys.stderr.write(f"\nsurvived: {module}:{mutant.line} {mutant.description}\n")
                sys.stderr.write(
                    f"\r{module}: {number}/{len(candidates)} mutants, {len(survivors)} survived"
                )
        finally:
            path.write_text(original)
        sys.stderr.write("\n")
        results.append((module, len(candidates), len(candidates) - len(survivors), survivors))
    return results


def _line(module: str, line: int) -> str:
    return (ROOT / module).read_text().splitlines()[line - 1].strip()


def record(results: list[tuple[str, int, int, list[Mutant]]], seconds: float) -> str:
    """The Markdown record: machine, date, score per module, every survivor."""
    lines = [
        "# Mutation testing record",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), {seconds:.0f} s, "
        "by `.venv/bin/python -m bench.mutation`.",
        "",
        "| module | guarding tests | mutants | killed | score |",
        "|---|---|---:|---:|---:|",
    ]
    for module, total, killed, _ in results:
        score = f"{killed / total:.0%}" if total else "-"
        lines.append(
            f"| `{module}` | {', '.join(TARGETS[module])} | {total} | {killed} | {score} |"
        )
    lines += [
        "",
        "## Survivors",
        "",
        "Each needs a test that kills it, or an argument that it is "
        "equivalent (the program behaves the same).",
        "",
    ]
    for module, _, _, survivors in results:
        for mutant in survivors:
            lines.append(
                f"- `{module}:{mutant.line}` {mutant.description}: `{_line(module, mutant.line)}`"
            )
    return "\n".join(lines) + "\n"


def as_section(text: str, modules: list[str]) -> str:
    """A partial run's record as a section to add to the file (the full run rewrites it)."""
    heading = f"## Run of {', '.join(f'`{m}`' for m in modules)}"
    return text.replace("# Mutation testing record", heading, 1).replace(
        "\n## Survivors", "\n### Survivors", 1
    )


def main() -> None:
    """Parse the options, mutate, write the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", choices=sorted(TARGETS))
    parser.add_argument("--limit", type=int, help="at most this many mutants a module")
    parser.add_argument(
        "--every", type=int, default=1, help="a sample: every Nth mutant, from the first"
    )
    parser.add_argument("--no-record", action="store_true", help="do not write MUTATION.md")
    parser.add_argument(
        "--marks",
        default="not completeness",
        help='pytest -m expression (e.g. "not completeness and not postgres" while something '
        "else restarts the PostgreSQL server)",
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so that the module under test is always put back.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    results = run(args.module or list(TARGETS), args.limit, args.marks, args.every)
    text = record(results, time.monotonic() - began)
    sys.stdout.write(text)
    if args.no_record:
        return
    if args.module:
        old = RECORD.read_text().rstrip("\n") if RECORD.exists() else "# Mutation testing record"
        RECORD.write_text(old + "\n\n" + as_section(text, args.module))
    else:
        RECORD.write_text(text)


if __name__ == "__main__":
    main()
