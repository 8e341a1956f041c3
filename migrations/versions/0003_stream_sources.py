"""stream sources: publish tokens and feed webhooks; the attribution view

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SOURCES = "source IN ('config', 'cli', 'discovered')"
NEW_SOURCES = "source IN ('config', 'cli', 'discovered', 'token', 'webhook')"

# Per hour and per day: the account's bytes, the sum over archived streams, and the usage
# no archived stream explains (account rows exist only for buckets with traffic).
ATTRIBUTION_VIEW = """
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


def _tracked(sources: str) -> sa.Table:
    # SQLite cannot alter a CHECK constraint: batch mode copies the table from this shape.
    return sa.Table(
        "tracked_streams",
        sa.MetaData(),
        sa.Column("stream_name", sa.String(length=512), primary_key=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(sources, name="ck_tracked_streams_source"),
        sa.CheckConstraint(
            "status IN ('active', 'dormant', 'refused')", name="ck_tracked_streams_status"
        ),
        sa.PrimaryKeyConstraint("stream_name", name="pk_tracked_streams"),
    )


def _swap_sources(old: str, new: str) -> None:
    with op.batch_alter_table("tracked_streams", copy_from=_tracked(old)) as batch:
        batch.drop_constraint(op.f("ck_tracked_streams_source"), type_="check")
        batch.create_check_constraint(op.f("ck_tracked_streams_source"), new)


def upgrade() -> None:
    _swap_sources(OLD_SOURCES, NEW_SOURCES)
    op.create_table(
        "token_patterns",
        sa.Column("token_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("pattern", sa.String(length=512), nullable=False),
        sa.Column("label", sa.String(length=512), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_id", "pattern", name=op.f("pk_token_patterns")),
    )
    op.execute(ATTRIBUTION_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW usage_attribution")
    op.drop_table("token_patterns")
    op.execute("DELETE FROM tracked_streams WHERE source IN ('token', 'webhook')")
    _swap_sources(NEW_SOURCES, OLD_SOURCES)
