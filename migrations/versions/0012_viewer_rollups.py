"""stream_daily_periods and account_hourly_periods: rollups behind the daily and account viewer
views

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 09:30:00

A year of 1,000 streams holds millions of 5-minute stream rows and 105,120 account rows; the
views of 0011 grouped them at every query (a day's top streams by peak viewers took 1.5 s on
PostgreSQL, 12 s on SQLite). `stream_daily_periods` holds each stream's day and
`account_hourly_periods` the account's hour, recomputed from their 5-minute rows by the write
path in the transaction that writes them (archiver/store/viewer_rollup.py), and filled here
from the rows already archived. `stream_daily_viewers`, `account_hourly_viewers` and
`account_daily_viewers` read them, with the same columns as before; `stream_hourly_viewers`
(a stream's hours, served by the table's key) still groups the rows themselves.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = ("stream_daily_viewers", "account_hourly_viewers", "account_daily_viewers")


def _0011() -> Any:
    path = Path(__file__).with_name("0011_viewer_stats.py")
    spec = importlib.util.spec_from_file_location("_revision_0011", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _counts() -> list[sa.Column[Any]]:
    return [
        sa.Column("peak_viewers", sa.Integer(), nullable=False),
        sa.Column("views_started", sa.BigInteger(), nullable=False),
        sa.Column("views_ended", sa.BigInteger(), nullable=False),
    ]


def _view(name: str, dialect: str) -> str:
    if name == "stream_daily_viewers":
        return (
            "CREATE VIEW stream_daily_viewers AS SELECT stream_name, day, peak_viewers, "
            "views_started, views_ended, periods, is_final FROM stream_daily_periods"
        )
    if name == "account_hourly_viewers":
        return (
            "CREATE VIEW account_hourly_viewers AS SELECT hour, peak_viewers, views_started, "
            "views_ended, peak_streams, periods, is_final FROM account_hourly_periods"
        )
    day = _0011()._floor(dialect, "day").replace("period_start", "hour")
    all_final = "bool_and(is_final)" if dialect == "postgresql" else "MIN(is_final)"
    return (
        f"CREATE VIEW account_daily_viewers AS SELECT {day} AS day, "
        # SUM of a BIGINT is NUMERIC on PostgreSQL: cast back, as 0011's view gave integers.
        "MAX(peak_viewers) AS peak_viewers, CAST(SUM(views_started) AS BIGINT) AS views_started, "
        "CAST(SUM(views_ended) AS BIGINT) AS views_ended, MAX(peak_streams) AS peak_streams, "
        f"SUM(periods) AS periods, {all_final} AS is_final "
        f"FROM account_hourly_periods GROUP BY {day}"
    )


def fill_rollups(dialect: str) -> list[str]:
    """The rollups filled from the rows already archived, by the old views' own grouping (also
    what bench/viewer_data.py runs over its generated rows)."""
    old = _0011()
    return [
        "INSERT INTO stream_daily_periods (stream_name, day, peak_viewers, views_started, "
        "views_ended, periods, is_final) SELECT * FROM ("
        + old.viewer_view(dialect, "stream_daily_viewers").split(" AS\n", 1)[1]
        + ") AS v",
        "INSERT INTO account_hourly_periods (hour, peak_viewers, views_started, views_ended, "
        "peak_streams, periods, is_final) SELECT * FROM ("
        + old.viewer_view(dialect, "account_hourly_viewers").split(" AS\n", 1)[1]
        + ") AS v",
    ]


def upgrade() -> None:
    op.create_table(
        "stream_daily_periods",
        sa.Column("stream_name", sa.String(length=128), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        *_counts(),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("stream_name", "day", name=op.f("pk_stream_daily_periods")),
    )
    op.create_index("ix_stream_daily_periods_day", "stream_daily_periods", ["day"])
    op.create_table(
        "account_hourly_periods",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *_counts(),
        sa.Column("peak_streams", sa.Integer(), nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_account_hourly_periods")),
    )
    dialect = op.get_bind().dialect.name
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    for statement in fill_rollups(dialect):
        op.execute(statement)
    for name in VIEWS:
        op.execute(_view(name, dialect))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    old = _0011()
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
        op.execute(old.viewer_view(dialect, name))
    op.drop_index("ix_stream_daily_periods_day", table_name="stream_daily_periods")
    op.drop_table("account_hourly_periods")
    op.drop_table("stream_daily_periods")
