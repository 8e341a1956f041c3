"""stream_period_totals: the streams' sums per hour and day, behind usage_attribution

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 02:30:00

0008's usage_attribution summed every stream row of each bucket in correlated subqueries, on
every read: a week by hour took 1.2-2.4 s at 1,000 streams. `stream_period_totals` keeps those
sums per (resolution, period_start), recomputed by the write path in the transaction that
writes the stream rows (archiver/store/rollup.py), and filled here from the rows already
archived. The view keeps 0008's columns and meaning; only where the sums come from changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The view's shape, 0008's: misses and excess apart, stream-only buckets kept (account 0).
_OUTER = """
CREATE VIEW usage_attribution AS
SELECT t.resolution, t.period_start, t.account_bytes_in, t.account_bytes_out,
       t.streams_bytes_in, t.streams_bytes_out,
       CAST(CASE WHEN t.account_bytes_in > t.streams_bytes_in
                 THEN t.account_bytes_in - t.streams_bytes_in ELSE 0 END AS BIGINT)
           AS unattributed_bytes_in,
       CAST(CASE WHEN t.account_bytes_out > t.streams_bytes_out
                 THEN t.account_bytes_out - t.streams_bytes_out ELSE 0 END AS BIGINT)
           AS unattributed_bytes_out,
       t.streams, t.is_final,
       CAST(CASE WHEN t.streams_bytes_in > t.account_bytes_in
                 THEN t.streams_bytes_in - t.account_bytes_in ELSE 0 END AS BIGINT)
           AS excess_bytes_in,
       CAST(CASE WHEN t.streams_bytes_out > t.account_bytes_out
                 THEN t.streams_bytes_out - t.account_bytes_out ELSE 0 END AS BIGINT)
           AS excess_bytes_out
FROM ({inner}) t
"""

VIEW = _OUTER.format(
    inner="""
    SELECT a.resolution, a.period_start,
           a.bytes_in AS account_bytes_in, a.bytes_out AS account_bytes_out,
           CAST(COALESCE(p.bytes_in, 0) AS BIGINT) AS streams_bytes_in,
           CAST(COALESCE(p.bytes_out, 0) AS BIGINT) AS streams_bytes_out,
           COALESCE(p.streams, 0) AS streams, a.is_final
    FROM account_usage a
    LEFT JOIN stream_period_totals p
      ON p.resolution = a.resolution AND p.period_start = a.period_start
    WHERE a.resolution IN ('Hour', 'Day')
    UNION ALL
    SELECT p.resolution, p.period_start, CAST(0 AS BIGINT), CAST(0 AS BIGINT),
           CAST(p.bytes_in AS BIGINT), CAST(p.bytes_out AS BIGINT), p.streams, p.is_final
    FROM stream_period_totals p
    WHERE NOT EXISTS (SELECT 1 FROM account_usage a
                      WHERE a.resolution = p.resolution AND a.period_start = p.period_start)
"""
)


def _streams(column: str) -> str:
    return (
        f"(SELECT {column} FROM stream_usage s "
        "WHERE s.resolution = a.resolution AND s.period_start = a.period_start)"
    )


def _all_final(dialect: str) -> str:
    return "bool_and(s.is_final)" if dialect == "postgresql" else "MIN(s.is_final)"


def _old_view(dialect: str) -> str:
    """0008's definition, for the way back."""
    return _OUTER.format(
        inner=f"""
    SELECT a.resolution, a.period_start,
           a.bytes_in AS account_bytes_in, a.bytes_out AS account_bytes_out,
           CAST(COALESCE({_streams("SUM(s.bytes_in)")}, 0) AS BIGINT) AS streams_bytes_in,
           CAST(COALESCE({_streams("SUM(s.bytes_out)")}, 0) AS BIGINT) AS streams_bytes_out,
           {_streams("COUNT(*)")} AS streams, a.is_final
    FROM account_usage a
    WHERE a.resolution IN ('Hour', 'Day')
    UNION ALL
    SELECT s.resolution, s.period_start, CAST(0 AS BIGINT), CAST(0 AS BIGINT),
           CAST(SUM(s.bytes_in) AS BIGINT), CAST(SUM(s.bytes_out) AS BIGINT), COUNT(*),
           {_all_final(dialect)}
    FROM stream_usage s
    WHERE s.resolution IN ('Hour', 'Day')
      AND NOT EXISTS (SELECT 1 FROM account_usage a
                      WHERE a.resolution = s.resolution AND a.period_start = s.period_start)
    GROUP BY s.resolution, s.period_start
"""
    )


def fill_sql(dialect: str) -> str:
    """The sums of the stream rows already archived (also how `bench` builds them)."""
    return (
        "INSERT INTO stream_period_totals (resolution, period_start, bytes_in, bytes_out, "
        f"streams, is_final) SELECT s.resolution, s.period_start, SUM(s.bytes_in), "
        f"SUM(s.bytes_out), COUNT(*), {_all_final(dialect)} FROM stream_usage s "
        "WHERE s.resolution IN ('Hour', 'Day') GROUP BY s.resolution, s.period_start"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "stream_period_totals",
        sa.Column("resolution", sa.String(length=5), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("streams", sa.BigInteger(), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "resolution", "period_start", name=op.f("pk_stream_period_totals")
        ),
    )
    op.execute(fill_sql(dialect))
    op.execute("DROP VIEW usage_attribution")
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW usage_attribution")
    op.execute(_old_view(op.get_bind().dialect.name))
    op.drop_table("stream_period_totals")
