"""Hand-made mutants of the SQL that guards finality: the final-row guard and the watermark move.

`bench.mutation` changes Python operators; it never touches the text of an SQL string (the
final-row guard is one: `WHERE NOT t.is_final OR excluded.is_final`) nor drops one condition of
an SQLAlchemy `where(...)`. Each mutant here replaces one exact piece of source text (found
exactly once) and runs the fast tests that guard it, once per database:

    .venv/bin/python -m bench.mutation_sql            # SQLite, then PostgreSQL; prints a table

It rewrites the module in place while a mutant runs and always puts it back, like
`bench.mutation`: run it only in a tree nobody edits meanwhile.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass

from bench.mutation import ROOT, _run_tests

UPSERT = "archiver/store/upsert.py"
STATE = "archiver/store/state.py"
GUARD = 'f" WHERE NOT {table.name}.is_final OR {source}.is_final"'
MOVE = ".where(same, sync_state.c.watermark >= low, sync_state.c.watermark < high)"
SAME = """        sync_state.c.dataset == dataset,
        sync_state.c.resolution == settlement.resolution.value,
        sync_state.c.stream_name.in_(names),
"""

TESTS = [
    "tests/test_final_row_guard.py",
    "tests/test_store.py",
    "tests/test_watermark_move.py",
    "tests/test_sync_state.py",
    "tests/test_finality.py",
    "tests/test_export_csv.py",
]
DATABASES = {
    "SQLite": "not completeness and not e2e and not postgres",
    "PostgreSQL": "not completeness and not e2e and postgres",
}


@dataclass(frozen=True)
class Mutant:
    """One piece of source text replaced by another."""

    path: str
    what: str
    old: str
    new: str


MUTANTS = [
    Mutant(UPSERT, "guard: `NOT` dropped", GUARD, GUARD.replace("NOT ", "")),
    Mutant(UPSERT, "guard: `OR` to `AND`", GUARD, GUARD.replace(" OR ", " AND ")),
    Mutant(
        UPSERT,
        "guard: `NOT t.is_final` dropped (only a final read writes)",
        GUARD,
        'f" WHERE {source}.is_final"',
    ),
    Mutant(
        UPSERT,
        "guard: `OR excluded.is_final` dropped (a final row never changes)",
        GUARD,
        'f" WHERE NOT {table.name}.is_final"',
    ),
    Mutant(UPSERT, "guard: the whole `WHERE` dropped", GUARD, 'f""'),
    Mutant(
        UPSERT,
        "guard: compares the stored row with itself",
        GUARD,
        GUARD.replace("{source}.is_final", "{table.name}.is_final"),
    ),
    Mutant(STATE, "move: `watermark >= low` to `>`", MOVE, MOVE.replace(">= low", "> low")),
    Mutant(STATE, "move: `watermark < high` to `<=`", MOVE, MOVE.replace("< high", "<= high")),
    Mutant(
        STATE,
        "move: `watermark >= low` dropped",
        MOVE,
        MOVE.replace(" sync_state.c.watermark >= low,", ""),
    ),
    Mutant(
        STATE,
        "move: `watermark < high` dropped",
        MOVE,
        MOVE.replace(", sync_state.c.watermark < high", ""),
    ),
    Mutant(STATE, "move: the scope filter dropped", MOVE, MOVE.replace("same, ", "")),
    Mutant(
        STATE,
        "move and success: `dataset = ...` dropped",
        SAME,
        SAME.replace("        sync_state.c.dataset == dataset,\n", ""),
    ),
    Mutant(
        STATE,
        "move and success: `resolution = ...` dropped",
        SAME,
        SAME.replace("        sync_state.c.resolution == settlement.resolution.value,\n", ""),
    ),
    Mutant(
        STATE,
        "move and success: `stream_name IN (...)` dropped",
        SAME,
        SAME.replace("        sync_state.c.stream_name.in_(names),\n", ""),
    ),
]


# CSV neutralising (a cell starting like a formula gets a `'`) and quoting, written as SQL for
# each database (and in Python for the tables with floats).
EXPORT = "archiver/reading/export.py"
TEXT = "archiver/text.py"
PG_CLASS = "ascii({c}) IN (45, 61, 43, 64, 9, 13)"
MUTANTS += [
    Mutant(EXPORT, "PostgreSQL cell: `@` not neutralised", PG_CLASS, PG_CLASS.replace(", 64", "")),
    Mutant(EXPORT, "PostgreSQL cell: `-` not neutralised", PG_CLASS, PG_CLASS.replace("45, ", "")),
    Mutant(
        EXPORT,
        "PostgreSQL cell: the `'` prefix dropped",
        "13) THEN '''' || {c} ELSE",
        "13) THEN {c} ELSE",
    ),
    Mutant(EXPORT, "SQLite cell: `@` not neutralised", "'-', '@', char(9)", "'-', char(9)"),
    Mutant(EXPORT, "SQLite cell: a tab not neutralised", "'@', char(9), ", "'@', "),
    Mutant(
        EXPORT,
        "SQLite cell: `typeof(c) = 'text' AND` to `OR`",
        "'text' AND substr",
        "'text' OR substr",
    ),
    Mutant(
        EXPORT,
        "SQLite cell: the fast path's formula test dropped",
        """    "OR {c} GLOB '[-=+@' || char(9) || char(13) || ']*' THEN""",
        """    "THEN""",
    ),
    Mutant(EXPORT, "SQLite cell: a line break not quoted", "OR instr({c}, char(10)) ", ""),
    Mutant(TEXT, "Python cell: `@` not neutralised", '"-", "@", ', '"-", '),
]


def apply(mutant: Mutant, text: str) -> str:
    """The module's text with the mutant's change; the piece must occur exactly once."""
    if text.count(mutant.old) != 1 or mutant.new == mutant.old:
        raise SystemExit(f"{mutant.path}: the mutant '{mutant.what}' no longer applies")
    return text.replace(mutant.old, mutant.new)


def run() -> list[tuple[Mutant, dict[str, bool]]]:
    """Each mutant against the guarding tests on each database; True where it was killed."""
    for marks in DATABASES.values():
        if _run_tests(TESTS, marks) != 0:
            raise SystemExit("the guarding tests fail before any mutation: fix them first")
    results = []
    for number, mutant in enumerate(MUTANTS, 1):
        path = ROOT / mutant.path
        original = path.read_text()
        mutated = apply(mutant, original)
        killed: dict[str, bool] = {}
        try:
            path.write_text(mutated)
            for name, marks in DATABASES.items():
                killed[name] = _run_tests(TESTS, marks) != 0
        finally:
            path.write_text(original)
        results.append((mutant, killed))
        sys.stderr.write(f"\r{number}/{len(MUTANTS)} SQL mutants run")
    sys.stderr.write("\n")
    return results


def table(results: list[tuple[Mutant, dict[str, bool]]]) -> str:
    """The Markdown table of the run: one row per mutant, killed or not on each database."""
    lines = [
        f"| module | mutant | {' | '.join(DATABASES)} |",
        f"|---|---|{'---|' * len(DATABASES)}",
    ]
    for mutant, killed in results:
        cells = " | ".join("killed" if killed[name] else "**survived**" for name in DATABASES)
        lines.append(f"| `{mutant.path}` | {mutant.what} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every mutant on both databases and print the table."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.stdout.write(table(run()))


if __name__ == "__main__":
    main()
