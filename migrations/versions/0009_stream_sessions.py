"""stream_sessions (the vendor's feeds, kept forever), feed_reads (how far feeds were read),
and 'feed' among the sources of tracked names

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 06:30:00

`stream_sessions` holds one row per feed, keyed by stream, start second and the feed's
place among the stream's feeds started in that second (feeds carry no id, and a stream
published redundantly has several at once). `feed_reads` holds the watermark of the feed
source, moved only with the sessions and names its read found.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SOURCES = "source IN ('config', 'cli', 'discovered', 'token', 'webhook')"
NEW_SOURCES = "source IN ('config', 'cli', 'discovered', 'token', 'webhook', 'feed')"


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
        "stream_sessions",
        sa.Column("stream_name", sa.String(length=128), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feed_ordinal", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("duration_seconds", sa.BigInteger(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "stream_name", "started", "feed_ordinal", name=op.f("pk_stream_sessions")
        ),
    )
    op.create_index(
        op.f("ix_stream_sessions_started"), "stream_sessions", ["started"], unique=False
    )
    op.create_table(
        "feed_reads",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_feed_reads")),
    )


def downgrade() -> None:
    op.drop_table("feed_reads")
    op.drop_index(op.f("ix_stream_sessions_started"), table_name="stream_sessions")
    op.drop_table("stream_sessions")
    op.execute("DELETE FROM tracked_streams WHERE source = 'feed'")
    _swap_sources(NEW_SOURCES, OLD_SOURCES)
