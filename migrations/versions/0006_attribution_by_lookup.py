"""usage_attribution looks up each bucket's stream sums instead of grouping every stream row

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 14:30:00

Same columns and values as 0003's view. SQLite does not push a WHERE on the view into 0003's
grouped subquery, so every question summed the whole of stream_usage first (0.47 s at 100
streams over a year, growing with the archive); correlated look-ups use the
(resolution, period_start) index and cost a few rows per bucket asked for.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _streams(column: str) -> str:
    return (
        f"(SELECT {column} FROM stream_usage s "
        "WHERE s.resolution = a.resolution AND s.period_start = a.period_start)"
    )


LOOKUP_VIEW = f"""
CREATE VIEW usage_attribution AS
SELECT a.resolution, a.period_start,
       a.bytes_in AS account_bytes_in, a.bytes_out AS account_bytes_out,
       CAST(COALESCE({_streams("SUM(s.bytes_in)")}, 0) AS BIGINT) AS streams_bytes_in,
       CAST(COALESCE({_streams("SUM(s.bytes_out)")}, 0) AS BIGINT) AS streams_bytes_out,
       CAST(a.bytes_in - COALESCE({_streams("SUM(s.bytes_in)")}, 0) AS BIGINT)
           AS unattributed_bytes_in,
       CAST(a.bytes_out - COALESCE({_streams("SUM(s.bytes_out)")}, 0) AS BIGINT)
           AS unattributed_bytes_out,
       {_streams("COUNT(*)")} AS streams, a.is_final
FROM account_usage a
WHERE a.resolution IN ('Hour', 'Day')
"""

# 0003's definition, for the way back.
GROUPED_VIEW = """
CREATE VIEW usage_attribution AS
SELECT a.resolution, a.period_start,
       a.bytes_in AS account_bytes_in, a.bytes_out AS account_bytes_out,
       CAST(COALESCE(s.bytes_in, 0) AS BIGINT) AS streams_bytes_in,
       CAST(COALESCE(s.bytes_out, 0) AS BIGINT) AS streams_bytes_out,
       CAST(a.bytes_in - COALESCE(s.bytes_in, 0) AS BIGINT) AS unattributed_bytes_in,
       CAST(a.bytes_out - COALESCE(s.bytes_out, 0) AS BIGINT) AS unattributed_bytes_out,
       COALESCE(s.streams, 0) AS streams, a.is_final
FROM account_usage a
LEFT JOIN (
    SELECT resolution, period_start, SUM(bytes_in) AS bytes_in, SUM(bytes_out) AS bytes_out,
           COUNT(*) AS streams
    FROM stream_usage
    WHERE resolution IN ('Hour', 'Day')
    GROUP BY resolution, period_start
) s ON s.resolution = a.resolution AND s.period_start = a.period_start
WHERE a.resolution IN ('Hour', 'Day')
"""


def upgrade() -> None:
    op.execute("DROP VIEW usage_attribution")
    op.execute(LOOKUP_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW usage_attribution")
    op.execute(GROUPED_VIEW)
