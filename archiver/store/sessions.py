"""The feed history: feeds as `stream_sessions` rows, and how far the feeds were read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.store.tables import feed_reads

FEED_SOURCE = "feeds"


def session_rows(feeds: Sequence[Any], fetched_at: datetime) -> list[dict[str, Any]]:
    """Rows of `stream_sessions` for feeds in the vendor's order (`stream_name`, `started`,
    `ended`, `active` attributes): feeds of one stream started in one second are numbered
    0, 1, ... as the vendor lists them."""
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, datetime], int] = {}
    for feed in feeds:
        started = feed.started.replace(microsecond=0)
        key = (feed.stream_name, started)
        ordinal = seen.get(key, 0)
        seen[key] = ordinal + 1
        ended = None if feed.ended is None else feed.ended.replace(microsecond=0)
        rows.append(
            {
                "stream_name": feed.stream_name,
                "started": started,
                "feed_ordinal": ordinal,
                "ended": ended,
                "active": feed.active,
                "duration_seconds": None
                if ended is None
                else int((ended - started).total_seconds()),
                "fetched_at": fetched_at,
            }
        )
    return rows


def feed_watermark(conn: Connection) -> datetime | None:
    """Where the last successful feed read stopped (None: never read)."""
    value: datetime | None = conn.execute(
        sa.select(feed_reads.c.watermark).where(feed_reads.c.source == FEED_SOURCE)
    ).scalar()
    return value


def move_feed_watermark(conn: Connection, watermark: datetime, read_at: datetime) -> None:
    """Record a successful read up to `watermark` (never moved back)."""
    current = feed_watermark(conn)
    if current is None:
        conn.execute(
            sa.insert(feed_reads).values(source=FEED_SOURCE, watermark=watermark, read_at=read_at)
        )
    elif watermark > current:
        conn.execute(
            sa.update(feed_reads)
            .where(feed_reads.c.source == FEED_SOURCE)
            .values(watermark=watermark, read_at=read_at)
        )
