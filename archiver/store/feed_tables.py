"""The tables of the vendor's feed history: sessions, and how far the feeds were read."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table

from archiver.store.tables import UtcDateTime, metadata

# One row per feed (a publication into a stream), kept forever (the vendor drops feeds 30
# days after they end). Feeds carry no id, and a stream published redundantly has several
# at once: the key is the stream, the start to the second, and the feed's place among the
# stream's feeds started in that same second, in the vendor's order (0 for nearly all).
stream_sessions = Table(
    "stream_sessions",
    metadata,
    Column("stream_name", String(128), primary_key=True),
    Column("started", UtcDateTime, primary_key=True),
    Column("feed_ordinal", Integer, primary_key=True, autoincrement=False),
    Column("ended", UtcDateTime),  # NULL while the feed runs
    Column("active", Boolean, nullable=False),
    Column("duration_seconds", BigInteger),  # NULL while the feed runs
    Column("fetched_at", UtcDateTime, nullable=False),
)
Index("ix_stream_sessions_started", stream_sessions.c.started)

# How far the feeds were last read: one row per source ('feeds'), moved only in the
# transaction that stores what the read found.
feed_reads = Table(
    "feed_reads",
    metadata,
    Column("source", String(16), primary_key=True),
    Column("watermark", UtcDateTime, nullable=False),
    Column("read_at", UtcDateTime, nullable=False),
)
