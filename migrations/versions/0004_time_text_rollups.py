"""RFC 3339 times on SQLite; daily and monthly rollups behind the query views

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:10:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = (
    "country_daily_usage",
    "account_monthly_usage",
    "account_daily_usage",
    "stream_monthly_usage",
    "stream_daily_usage",
)
ROLLUPS = (
    "stream_monthly_totals",
    "country_daily_hours",
    "account_daily_hours",
    "stream_daily_hours",
)
NEW_TIME = "%Y-%m-%dT%H:%M:%SZ"
OLD_TIME = "%Y-%m-%d %H:%M:%S.000000"


def _sqlite_time_columns() -> list[tuple[str, str]]:
    # Every DATETIME column of every table, those of other migrations included.
    inspector = sa.inspect(op.get_bind())
    return [
        (table, column["name"])
        for table in inspector.get_table_names()
        if table != "alembic_version"
        for column in inspector.get_columns(table)
        if isinstance(column["type"], sa.DateTime)
    ]


def _convert_sqlite_times(form: str) -> None:
    for table, column in _sqlite_time_columns():
        op.execute(
            f"UPDATE {table} SET {column} = strftime('{form}', {column}) WHERE {column} IS NOT NULL"
        )


def _floor(unit: str, column: str) -> str:
    if op.get_bind().dialect.name == "postgresql":
        # date_trunc on timestamptz follows the session time zone: pin it to UTC.
        return f"date_trunc('{unit}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    return f"strftime('{'%Y-%m-%d' if unit == 'day' else '%Y-%m-01'}T00:00:00Z', {column})"


def _all_final() -> str:
    return "bool_and(is_final)" if op.get_bind().dialect.name == "postgresql" else "MIN(is_final)"


def _create_rollups() -> None:
    op.create_table(
        "stream_daily_hours",
        sa.Column("stream_name", sa.String(length=128), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("stream_name", "day", name=op.f("pk_stream_daily_hours")),
    )
    op.create_index("ix_stream_daily_hours_day", "stream_daily_hours", ["day"])
    op.create_table(
        "account_daily_hours",
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_account_daily_hours")),
    )
    op.create_table(
        "country_daily_hours",
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("country", sa.String(length=8), nullable=False),
        sa.Column("publishes", sa.BigInteger(), nullable=False),
        sa.Column("views", sa.BigInteger(), nullable=False),
        sa.Column("publish_seconds", sa.BigInteger(), nullable=False),
        sa.Column("view_seconds", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("day", "country", name=op.f("pk_country_daily_hours")),
    )
    op.create_table(
        "stream_monthly_totals",
        sa.Column("stream_name", sa.String(length=128), nullable=False),
        sa.Column("month", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("days_with_traffic", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream_name", "month", name=op.f("pk_stream_monthly_totals")),
    )
    op.create_index("ix_stream_monthly_totals_month", "stream_monthly_totals", ["month"])


def _fill_daily_rollups() -> None:
    day = _floor("day", "period_start")
    final = _all_final()
    # A day's hours are superseded once the vendor's own row for that day is archived.
    op.execute(f"""
INSERT INTO stream_daily_hours (stream_name, day, bytes_in, bytes_out, is_final, hours, superseded)
SELECT stream_name, day, bytes_in, bytes_out, is_final, hours,
       EXISTS (SELECT 1 FROM stream_usage d WHERE d.stream_name = h.stream_name
               AND d.resolution = 'Day' AND d.period_start = h.day)
FROM (SELECT stream_name, {day} AS day, SUM(bytes_in) AS bytes_in, SUM(bytes_out) AS bytes_out,
             {final} AS is_final, COUNT(*) AS hours
      FROM stream_usage WHERE resolution = 'Hour' GROUP BY stream_name, {day}) AS h
""")
    op.execute(f"""
INSERT INTO account_daily_hours (day, bytes_in, bytes_out, is_final, hours, superseded)
SELECT day, bytes_in, bytes_out, is_final, hours,
       EXISTS (SELECT 1 FROM account_usage d WHERE d.resolution = 'Day' AND d.period_start = h.day)
FROM (SELECT {day} AS day, SUM(bytes_in) AS bytes_in, SUM(bytes_out) AS bytes_out,
             {final} AS is_final, COUNT(*) AS hours
      FROM account_usage WHERE resolution = 'Hour' GROUP BY {day}) AS h
""")
    op.execute(f"""
INSERT INTO country_daily_hours (day, country, publishes, views, publish_seconds, view_seconds,
                                 bytes_in, bytes_out, superseded)
SELECT day, country, publishes, views, publish_seconds, view_seconds, bytes_in, bytes_out,
       EXISTS (SELECT 1 FROM account_geo_usage d
               WHERE d.resolution = 'Day' AND d.period_start = h.day)
FROM (SELECT {day} AS day, country, SUM(publishes) AS publishes, SUM(views) AS views,
             SUM(publish_seconds) AS publish_seconds, SUM(view_seconds) AS view_seconds,
             SUM(bytes_in) AS bytes_in, SUM(bytes_out) AS bytes_out
      FROM account_geo_usage WHERE resolution = 'Hour' GROUP BY {day}, country) AS h
""")


def _daily_view(view: str, table: str, rollup: str, key: str) -> str:
    # The vendor's day row where one was archived, else the archived hours summed.
    select_key = f"{key}, " if key else ""
    return f"""
CREATE VIEW {view} AS
SELECT {select_key}period_start AS day, bytes_in, bytes_out, is_final, 'Day' AS source
FROM {table} WHERE resolution = 'Day'
UNION ALL
SELECT {select_key}day, bytes_in, bytes_out, is_final, 'Hour' AS source
FROM {rollup} WHERE NOT superseded
"""


def _create_views() -> None:
    op.execute(
        _daily_view("stream_daily_usage", "stream_usage", "stream_daily_hours", "stream_name")
    )
    op.execute(_daily_view("account_daily_usage", "account_usage", "account_daily_hours", ""))
    op.execute("""
CREATE VIEW stream_monthly_usage AS
SELECT stream_name, month, bytes_in, bytes_out, days_with_traffic FROM stream_monthly_totals
""")
    op.execute("""
CREATE VIEW account_monthly_usage AS
SELECT period_start AS month, bytes_in, bytes_out, restream_seconds, is_final
FROM account_usage WHERE resolution = 'Month'
""")
    op.execute("""
CREATE VIEW country_daily_usage AS
SELECT period_start AS day, country, publishes, views, publish_seconds, view_seconds,
       bytes_in, bytes_out
FROM account_geo_usage WHERE resolution = 'Day'
UNION ALL
SELECT day, country, publishes, views, publish_seconds, view_seconds, bytes_in, bytes_out
FROM country_daily_hours WHERE NOT superseded
""")


def _fill_monthly_rollup() -> None:
    month = _floor("month", "day")
    op.execute(f"""
INSERT INTO stream_monthly_totals (stream_name, month, bytes_in, bytes_out, days_with_traffic)
SELECT stream_name, {month}, SUM(bytes_in), SUM(bytes_out), COUNT(*)
FROM stream_daily_usage GROUP BY stream_name, {month}
""")


def _drop_views() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")


def upgrade() -> None:
    _drop_views()
    if op.get_bind().dialect.name == "sqlite":
        _convert_sqlite_times(NEW_TIME)
    _create_rollups()
    _fill_daily_rollups()
    _create_views()
    _fill_monthly_rollup()


def _revision_0002() -> ModuleType:
    path = Path(__file__).with_name("0002_query_views.py")
    spec = importlib.util.spec_from_file_location("_revision_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    _drop_views()
    for table in ROLLUPS:
        op.drop_table(table)
    if op.get_bind().dialect.name == "sqlite":
        _convert_sqlite_times(OLD_TIME)
    _revision_0002().upgrade()
