"""stream_tracking_usage: bytes per subscribe-token tracking ID per stream (Hour and Day), and
the views tracking_daily_usage and tracking_monthly_usage

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 06:30:00

`tracking_daily_usage` has one row per tracking ID ('' is traffic under none) and UTC day: per
stream, the vendor's Day rows where that stream's day is archived, else its archived hours
summed; then summed over streams (`streams` counts them). `is_final` holds when every part is.
`tracking_monthly_usage` sums those days per UTC month. No rollup table: the views sum the
table itself (its index on resolution and period_start serves the day lookups).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _floor(dialect: str, unit: str, column: str) -> str:
    """The UTC day or month `column` falls in, as each database stores times."""
    if dialect == "postgresql":
        # date_trunc on timestamptz follows the session time zone: pin it to UTC.
        return f"(date_trunc('{unit}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
    return f"strftime('{'%Y-%m-%d' if unit == 'day' else '%Y-%m-01'}T00:00:00Z', {column})"


def _all_final(dialect: str) -> str:
    return "bool_and(is_final)" if dialect == "postgresql" else "MIN(is_final)"


def daily_view(dialect: str) -> str:
    """tracking_daily_usage, in `dialect`'s spelling of date arithmetic."""
    day = _floor(dialect, "day", "h.period_start")
    return f"""
CREATE VIEW tracking_daily_usage AS
SELECT tracking_id, day, CAST(SUM(bytes_in) AS BIGINT) AS bytes_in,
       CAST(SUM(bytes_out) AS BIGINT) AS bytes_out, COUNT(DISTINCT stream_name) AS streams,
       {_all_final(dialect)} AS is_final
FROM (
    SELECT d.stream_name, d.tracking_id, d.period_start AS day, d.bytes_in, d.bytes_out,
           d.is_final
    FROM stream_tracking_usage d WHERE d.resolution = 'Day'
    UNION ALL
    SELECT h.stream_name, h.tracking_id, {day} AS day, h.bytes_in, h.bytes_out, h.is_final
    FROM stream_tracking_usage h
    WHERE h.resolution = 'Hour'
      AND NOT EXISTS (SELECT 1 FROM stream_tracking_usage d
                      WHERE d.stream_name = h.stream_name AND d.resolution = 'Day'
                        AND d.period_start = {day})
) u
GROUP BY tracking_id, day
"""


def monthly_view(dialect: str) -> str:
    """tracking_monthly_usage: the daily view summed per UTC month."""
    month = _floor(dialect, "month", "day")
    return f"""
CREATE VIEW tracking_monthly_usage AS
SELECT tracking_id, {month} AS month, CAST(SUM(bytes_in) AS BIGINT) AS bytes_in,
       CAST(SUM(bytes_out) AS BIGINT) AS bytes_out, COUNT(*) AS days_with_traffic,
       {_all_final(dialect)} AS is_final
FROM tracking_daily_usage
GROUP BY tracking_id, {month}
"""


def upgrade() -> None:
    op.create_table(
        "stream_tracking_usage",
        sa.Column("stream_name", sa.String(length=128), nullable=False),
        sa.Column("resolution", sa.String(length=5), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tracking_id", sa.String(length=128), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "resolution IN ('Hour', 'Day', 'Month')",
            name=op.f("ck_stream_tracking_usage_resolution"),
        ),
        sa.PrimaryKeyConstraint(
            "stream_name",
            "resolution",
            "period_start",
            "tracking_id",
            name=op.f("pk_stream_tracking_usage"),
        ),
    )
    op.create_index(
        "ix_stream_tracking_usage_period",
        "stream_tracking_usage",
        ["resolution", "period_start"],
    )
    dialect = op.get_bind().dialect.name
    op.execute(daily_view(dialect))
    op.execute(monthly_view(dialect))


def downgrade() -> None:
    op.execute("DROP VIEW tracking_monthly_usage")
    op.execute("DROP VIEW tracking_daily_usage")
    op.drop_index("ix_stream_tracking_usage_period", table_name="stream_tracking_usage")
    op.drop_table("stream_tracking_usage")
