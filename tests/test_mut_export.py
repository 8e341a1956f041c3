"""CSV export of views, mutant by mutant: booleans of untyped columns, untyped text neutralised.

SQLite's views carry no column types where a column is an expression (`usage_attribution`'s
`is_final`, for one): the export then decides a column's spelling from its name and a sample
value. These tests kill the mutants of `archiver/reading/export.py` that no test reached
(bench/MUTATION.md names them).
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from archiver.reading.export import export_rows, write_export
from archiver.store import db
from archiver.store.tables import account_usage, stream_usage, sync_runs
from tests.test_reconciliation_views import H, put, usage


def _csv(engine: Engine, name: str) -> list[dict[str, str]]:
    out = io.StringIO()
    with engine.connect() as conn:
        count = write_export(export_rows(conn, name), "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert count == len(rows)
    return rows


def test_is_final_of_usage_attribution_is_spelt_true_or_false(engine: Engine) -> None:
    put(
        engine,
        account_usage,
        usage(H[5], "Hour", 1000),
        {**usage(H[6], "Hour", 800), "is_final": False},
    )
    put(engine, stream_usage, usage(H[5], "Hour", 400, stream_name="a"))
    rows = [r for r in _csv(engine, "usage_attribution") if r["resolution"] == "Hour"]
    assert {r["period_start"]: r["is_final"] for r in rows} == {
        "2026-11-18T05:00:00Z": "true",
        "2026-11-18T06:00:00Z": "false",
    }
    # The untyped sums stay numbers, as they are.
    assert {r["period_start"]: r["unattributed_bytes_out"] for r in rows} == {
        "2026-11-18T05:00:00Z": "600",
        "2026-11-18T06:00:00Z": "800",
    }


def _sqlite_with_view(tmp_path: Path, migrated_sqlite: Path, select: str) -> Engine:
    """A SQLite archive whose `reconciliation` view is replaced by `select` (the export reads a
    view by its name; its columns are whatever the view declares)."""
    path = tmp_path / "archive.db"
    shutil.copyfile(migrated_sqlite, path)
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP VIEW reconciliation")
        conn.exec_driver_sql(f"CREATE VIEW reconciliation AS {select}")
    return engine


@pytest.fixture
def untyped_view(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Engine]:
    """Untyped columns: a publisher's stream name as an expression (no declared type), and a
    number."""
    engine = _sqlite_with_view(
        tmp_path,
        migrated_sqlite,
        "SELECT stream_name || '' AS check_name, bytes_out - 1000 AS parts FROM stream_usage "
        "ORDER BY stream_name",
    )
    yield engine
    engine.dispose()


def test_untyped_text_of_a_sqlite_view_is_neutralised_and_quoted(untyped_view: Engine) -> None:
    names = ["=HYPERLINK(1)", "@at", "a,b", 'say "x"', "plain"]
    for name in names:
        put(untyped_view, stream_usage, usage(H[5], "Hour", 10, stream_name=name))
    rows = _csv(untyped_view, "reconciliation")
    # The first row (the sample the spelling is decided from) is formula-like text.
    assert rows[0]["check_name"] == "'=HYPERLINK(1)"
    assert sorted(r["check_name"] for r in rows) == sorted(
        ["'=HYPERLINK(1)", "'@at", "a,b", 'say "x"', "plain"]
    )
    # A negative number is a number, never neutralised.
    assert {r["parts"] for r in rows} == {"-990"}


def test_is_final_on_the_python_path_is_spelt_true_or_false_from_sqlites_integers(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    # A float column sends a table through Python's csv writer; SQLite hands `is_final` to it
    # as 0 or 1, which its name makes a boolean.
    engine = _sqlite_with_view(
        tmp_path,
        migrated_sqlite,
        "SELECT r.clock_skew_seconds, u.is_final FROM sync_runs r CROSS JOIN stream_usage u "
        "ORDER BY u.is_final",
    )
    try:
        put(engine, stream_usage, usage(H[5], "Hour", 1, stream_name="a"))
        put(engine, stream_usage, {**usage(H[5], "Hour", 1, stream_name="b"), "is_final": False})
        with engine.begin() as conn:
            conn.execute(
                sync_runs.insert().values(
                    kind="sync", started_at=H[5], status="ok", clock_skew_seconds=0.5
                )
            )
        rows = _csv(engine, "reconciliation")
    finally:
        engine.dispose()
    assert [(r["clock_skew_seconds"], r["is_final"]) for r in rows] == [
        ("0.5", "false"),
        ("0.5", "true"),
    ]
