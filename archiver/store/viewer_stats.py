"""Where each viewer statistics read starts next (`viewer_reads`), per dataset and stream."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.datasets import STREAM_VIEWER_STATS
from archiver.store.tables import viewer_reads

ACCOUNT_KEY = ""  # the account's row in viewer_reads


def viewer_watermarks(conn: Connection, dataset: str) -> dict[str, datetime]:
    """Where the next read of each stream ('' for the account) starts; absent: never read."""
    rows = conn.execute(
        sa.select(viewer_reads.c.stream_name, viewer_reads.c.watermark).where(
            viewer_reads.c.dataset == dataset
        )
    )
    return {row.stream_name: row.watermark for row in rows}


def last_stream_reads(conn: Connection) -> dict[str, datetime]:
    """When each stream's viewer watermark last moved (absent: never read)."""
    rows = conn.execute(
        sa.select(viewer_reads.c.stream_name, viewer_reads.c.read_at).where(
            viewer_reads.c.dataset == STREAM_VIEWER_STATS.dataset
        )
    )
    return {row.stream_name: row.read_at for row in rows}


def move_viewer_watermarks(
    conn: Connection, dataset: str, names: Iterable[str], watermark: datetime, read_at: datetime
) -> None:
    """Move the watermarks of `names` to `watermark`, never back (inside the rows' transaction)."""
    current = viewer_watermarks(conn, dataset)
    for name in names:
        mark = current.get(name)
        if mark is None:
            conn.execute(
                sa.insert(viewer_reads).values(
                    dataset=dataset, stream_name=name, watermark=watermark, read_at=read_at
                )
            )
        elif watermark > mark:
            conn.execute(
                sa.update(viewer_reads)
                .where(viewer_reads.c.dataset == dataset, viewer_reads.c.stream_name == name)
                .values(watermark=watermark, read_at=read_at)
            )
