"""`archiver export` spells every true/false column as true/false, on both databases, in CSV
and JSON lines: SQLite returns booleans as 0/1 and its views carry no column types."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.reading.export import BOOLEANS, export_rows, write_export
from archiver.store.tables import metadata, token_patterns
from tests.test_session_days import session, write

# Each exported table or view with a true/false column, and those columns.
CASES = {
    "token_patterns": ("is_active",),
    "stream_sessions": ("active",),
    "stream_daily_sessions": ("active",),
}


def _fill(engine: Engine) -> None:
    read_at = datetime(2026, 11, 21, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(token_patterns),
            [
                {
                    "token_id": 1,
                    "pattern": "cam-.*",
                    "label": "",
                    "is_active": True,
                    "read_at": read_at,
                },
                {
                    "token_id": 2,
                    "pattern": "old-.*",
                    "label": "",
                    "is_active": False,
                    "read_at": read_at,
                },
            ],
        )
    write(engine, session("ended", 60, 120, 130), session("running", 600, None, 700))


@pytest.mark.parametrize("table", sorted(CASES))
def test_true_and_false_read_alike_everywhere(engine: Engine, table: str) -> None:
    _fill(engine)
    with engine.connect() as conn:
        text = io.StringIO()
        write_export(export_rows(conn, table), "csv", text)
        lines = io.StringIO()
        write_export(export_rows(conn, table), "jsonl", lines)
    cells = list(csv.DictReader(io.StringIO(text.getvalue())))
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    for column in CASES[table]:
        assert {c[column] for c in cells} == {"true", "false"}, (table, column)
        assert {r[column] for r in records} == {True, False}, (table, column)
        assert all(type(r[column]) is bool for r in records), (table, column)


def test_every_boolean_column_is_known_by_name() -> None:
    # A new boolean column is spelt true/false in a SQLite view only if its name is known.
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, sa.Boolean):
                assert column.name in BOOLEANS, (table.name, column.name)
    assert "gap_recorded" in BOOLEANS  # reconciliation's own, made by the view
