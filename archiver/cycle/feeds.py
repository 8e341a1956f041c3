"""The vendor's feeds as a name source, every cycle: names tracked, sessions archived.

Each read asks for the feeds that started or ended since the last successful read, less an
hour of overlap, and those still running; the first read, and the first after any
interruption, so reach back to where the last successful read stopped, at most the 30
days the vendor keeps. A read walks a day of starts at a time; each walk's names and
sessions are written in one transaction as it ends, and the watermark moves after the last,
only on a read that refused no row, had every walk answered and was timed by a believed
clock: a read cut short is read again, its walks that answered stored meanwhile. A failing
read costs only this source (a refused secret or no server at the URL ends the cycle, as for
every source).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from archiver.api.client import AnalyticsClient
from archiver.api.errors import CYCLE_ENDING, ApiError
from archiver.api.feeds import Feed, FeedRead, FeedWalks
from archiver.config import Settings
from archiver.cycle.report import CycleReport
from archiver.cycle.streams import add_streams, mark_seen
from archiver.datasets import STREAM_SESSIONS
from archiver.errors import DatabaseError
from archiver.store.db import transaction
from archiver.store.query_rows import save_rows
from archiver.store.sessions import feed_watermark, move_feed_watermark, session_rows
from archiver.store.tables import tracked_streams
from archiver.vocabulary import StreamSource, StreamStatus, refusal_reason

log = logging.getLogger(__name__)

OVERLAP = timedelta(hours=1)


def read_since(watermark: datetime | None, now: datetime) -> datetime:
    """Where a read at `now` starts: the last read's end less the overlap, at most the
    vendor's retention back."""
    retention = STREAM_SESSIONS.retention
    assert retention is not None  # declared: the vendor drops a feed 30 days after it ends
    oldest = now - retention
    return oldest if watermark is None else max(watermark - OVERLAP, oldest)


def feed_source(
    *, engine: Engine, client: AnalyticsClient, settings: Settings, report: CycleReport
) -> None:
    """Read the feeds, track their names, archive their sessions, move the watermark."""
    now = report.now
    window = timedelta(days=settings.stream_retention_days)
    refused = False
    try:
        with transaction(engine) as conn:
            since = read_since(feed_watermark(conn), now)
        walks = FeedWalks(client, since, now)
        # Each walk's feeds are stored as it ends (a day of them: a read of 30 days of
        # 10,000 streams held at once took 300 MB); the watermark moves once all are.
        for read in walks.batches():
            refused = refused or bool(read.refused)
            _store(engine, read, report, window)
        if walks.failed:  # the other walks' feeds are stored; the watermark waits
            report.errors.append(f"feeds: {walks.failed}")
            log.error("reading some of the feeds failed (storing the others): %s", walks.failed)
        elif not refused and report.belief.believed:
            with transaction(engine) as conn:
                move_feed_watermark(conn, now, now)
    except CYCLE_ENDING:
        raise  # a refused secret (401) or no server at the URL: every request would fail
    except ApiError as exc:
        report.errors.append(f"feeds: {exc}")
        log.error("reading the feeds failed (going on with the other sources): %s", exc)
    except DatabaseError as exc:
        report.errors.append(f"feeds: {exc}")
        log.error("could not store what the feeds told (going on without it): %s", exc)


def _store(engine: Engine, read: FeedRead, report: CycleReport, window: timedelta) -> None:
    """One walk's feeds: names tracked, dormant ones woken, sessions archived."""
    now = report.now
    for reason in read.refused:
        report.errors.append(f"feeds: {reason}")
        log.warning("feeds: %s", reason)
    reportable = [f for f in read.feeds if refusal_reason(f.stream_name) is None]
    with transaction(engine) as conn:
        added = add_streams(
            conn=conn,
            names=[f.stream_name for f in read.feeds],
            source=StreamSource.FEED,
            now=now,
        )
        woken = _wake(conn, reportable, now, window)
        rows = save_rows(conn, STREAM_SESSIONS, session_rows(reportable, now))
    report.rows += rows
    table = STREAM_SESSIONS.table
    report.rows_by_table[table] = report.rows_by_table.get(table, 0) + rows
    report.refused.update(added.refused)
    report.discovered += added.added
    for name in added.added:
        log.info("tracking stream %r: it published a feed", name)
    for name in woken:
        log.info("stream %r is live again (a feed); tracking it every cycle", name)


def _wake(conn: Connection, feeds: list[Feed], now: datetime, window: timedelta) -> list[str]:
    """Streams seen publishing inside the per-stream window are seen then (live ones now):
    a dormant one wakes at once. Returns the dormant names woken."""
    last: dict[str, datetime] = {}
    for feed in feeds:
        moment = min(now if feed.ended is None else feed.ended, now)
        if moment >= now - window and moment > last.get(feed.stream_name, moment - window):
            last[feed.stream_name] = moment
    if not last:
        return []
    dormant = set(
        conn.execute(
            sa.select(tracked_streams.c.stream_name).where(
                tracked_streams.c.stream_name.in_(list(last)),
                tracked_streams.c.status == StreamStatus.DORMANT,
            )
        ).scalars()
    )
    mark_seen(conn=conn, last_seen=last)
    return sorted(dormant)
