"""Writing the viewer statistics: rows through the one upsert path, and each read's watermark."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.store.upsert import upsert_rows
from archiver.store.viewer_rollup import refresh_viewer_rollups, serialise_viewer_writers
from archiver.store.viewer_tables import account_viewer_stats, stream_viewer_stats, viewer_reads

STREAM_DATASET = "stream_viewer_stats"
ACCOUNT_DATASET = "account_viewer_stats"
ACCOUNT_KEY = ""  # the account's row in viewer_reads


def save_stats(conn: Connection, dataset: str, rows: list[dict[str, Any]]) -> int:
    """Upsert rows (every column given): a final row is never replaced by a non-final one;
    the rollup of each day (stream) or hour (account) they touch is recomputed."""
    table = stream_viewer_stats if dataset == STREAM_DATASET else account_viewer_stats
    if not rows:
        return 0
    serialise_viewer_writers(conn)
    written = upsert_rows(conn=conn, table=table, rows=rows)
    # Same transaction: a rollup never disagrees with the rows it groups.
    refresh_viewer_rollups(conn, table.name, rows)
    return written


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
            viewer_reads.c.dataset == STREAM_DATASET
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
