"""stream_viewer_stats and account_viewer_stats (the vendor's 5-minute viewer statistics),
viewer_reads (where each read starts next), and their hourly and daily peak views

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 07:00:00

A period's row is final once fetched at least the settle time after the period's end (by the
vendor's clock), as every bucket. The views group the 5-minute rows by hour and by day (UTC):
`peak_viewers` is the most viewers watching at the end of any period in it, `views_started`
and `views_ended` the sums, `periods` the periods archived (a period without a row had no
viewers), `is_final` whether every one of them is final.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = (
    "stream_hourly_viewers",
    "stream_daily_viewers",
    "account_hourly_viewers",
    "account_daily_viewers",
)


def _floor(dialect: str, unit: str) -> str:
    if dialect == "postgresql":
        # date_trunc on timestamptz follows the session time zone: pin it to UTC.
        return f"date_trunc('{unit}', period_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    return f"strftime('{'%Y-%m-%dT%H' if unit == 'hour' else '%Y-%m-%dT00'}:00:00Z', period_start)"


def viewer_view(dialect: str, name: str) -> str:
    """One view: `<stream|account>_<hourly|daily>_viewers`, in `dialect`'s spelling."""
    scope, period, _ = name.split("_")
    unit = "hour" if period == "hourly" else "day"
    key = "stream_name, " if scope == "stream" else ""
    streams = "" if scope == "stream" else "MAX(streams) AS peak_streams, "
    all_final = "bool_and(is_final)" if dialect == "postgresql" else "MIN(is_final)"
    floor = _floor(dialect, unit)
    return f"""
CREATE VIEW {name} AS
SELECT {key}{floor} AS {unit}, MAX(active_viewers) AS peak_viewers,
       SUM(views_started) AS views_started, SUM(views_ended) AS views_ended, {streams}
       COUNT(*) AS periods, {all_final} AS is_final
FROM {scope}_viewer_stats
GROUP BY {key}{floor}
"""


def upgrade() -> None:
    times = {"fetched_at": sa.DateTime(timezone=True)}
    counts = ("active_viewers", "views_started", "views_ended")
    op.create_table(
        "stream_viewer_stats",
        sa.Column("stream_name", sa.String(length=128), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in counts),
        sa.Column("fetched_at", times["fetched_at"], nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("stream_name", "period_start", name=op.f("pk_stream_viewer_stats")),
    )
    op.create_table(
        "account_viewer_stats",
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in (*counts, "streams")),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("period_start", name=op.f("pk_account_viewer_stats")),
    )
    op.create_table(
        "viewer_reads",
        sa.Column("dataset", sa.String(length=32), nullable=False),
        sa.Column("stream_name", sa.String(length=128), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "stream_name", name=op.f("pk_viewer_reads")),
    )
    dialect = op.get_bind().dialect.name
    for name in VIEWS:
        op.execute(viewer_view(dialect, name))


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    op.drop_table("viewer_reads")
    op.drop_table("account_viewer_stats")
    op.drop_table("stream_viewer_stats")
