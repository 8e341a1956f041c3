"""`archiver export` spells every true/false column as true/false, on both databases, in CSV
and JSON lines (SQLite returns booleans as 0/1 and its views carry no column types); and a
PostgreSQL archive in any encoding exports its names, neutralised."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.reading.export import BOOLEANS, _boolean, export_rows, write_export
from archiver.store import db
from archiver.store.tables import metadata, stream_usage, token_patterns
from archiver.store.upsert import upsert_rows
from tests.conftest import postgres_admin_url
from tests.test_query_times import usage
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


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_url")
@pytest.mark.parametrize("encoding", ["UTF8", "EUC_JP", "LATIN1"])
def test_a_postgresql_archive_in_any_encoding_exports_its_names(encoding: str) -> None:
    # `ascii()` fails on a non-ASCII first character in EUC_JP: such a database keeps the
    # regex; and its COPY is read as UTF-8 whatever the database's encoding.
    admin = sa.create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"archiver_enc_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0"
            )
        )
    url = sa.make_url(postgres_admin_url()).set(database=name)
    engine = db.make_engine(url.render_as_string(hide_password=False))
    try:
        db.upgrade(engine)
        names = ["=cam", "-x", "plain"] + (
            ["é-live"] if encoding == "LATIN1" else ["日本", "é-live"]
        )
        with engine.begin() as conn:
            upsert_rows(
                conn=conn,
                table=stream_usage,
                rows=[usage(n, "Hour", datetime(2026, 11, 20, tzinfo=UTC), 5) for n in names],
            )
        with engine.connect() as conn:
            text = io.StringIO()
            write_export(export_rows(conn, "stream_usage"), "csv", text)
        got = sorted(r["stream_name"] for r in csv.DictReader(io.StringIO(text.getvalue())))
        expected = sorted("'" + n if n[0] in "=-" else n for n in names)
        assert got == expected
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_typed_column_goes_by_its_type_not_its_name() -> None:
    # A count named `active` (say, of a view on PostgreSQL, where every column is typed)
    # must stay a number; only an untyped column (a SQLite view's) is judged by its name.
    assert not _boolean("active", sa.BigInteger())
    assert _boolean("active", sa.types.NullType())
    assert _boolean("any_flag", sa.Boolean())
    assert not _boolean("peak_viewers", sa.types.NullType())
