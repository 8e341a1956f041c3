"""The vendor's viewer statistics, every cycle: the account's and each tracked stream's.

Each read starts at its own watermark, the first 5-minute period not yet final (a first read
reaches ARCHIVER_ACCOUNT_VIEWER_DAYS or ARCHIVER_STREAM_VIEWER_DAYS back), and stores rows
final by the rule of every bucket: read at least the settle time after the period's end, by
the cycle's believed vendor clock (not believed: nothing final, no watermark moves). Rows and
watermark are written in one transaction; a read that refused a row stores the others and
keeps its watermark. When this cycle's feed read was complete (every feed up to now known),
a stream is read only if it was never read, its last read is a day old, or it was seen
publishing (a feed running or ended) at or after its watermark; a stream skipped keeps its
watermark and is read from there once it publishes again: nothing is skipped over. (The daily
read covers statistics the vendor might keep of a stream without a feed: it does not say.)
The streams' reads, 100 names at a time, walk side by side (the client's concurrency, at
most 8), and their stores take turns. A failing read costs only itself (a refused secret, no
server at the URL or a database failure ends the cycle, as for every answer).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from contextlib import closing
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient
from archiver.api.errors import CYCLE_ENDING, ApiError
from archiver.api.pool import run_batched
from archiver.api.viewers import StatRead, find_account, read_account_stats, read_stream_stats
from archiver.config import Settings
from archiver.cycle.report import CycleReport
from archiver.datasets import ACCOUNT_VIEWER_STATS, STREAM_VIEWER_STATS, Query
from archiver.rules.finality import first_unfinal_period, period_final
from archiver.store.db import transaction
from archiver.store.query_rows import save_rows
from archiver.store.sessions import feed_watermark
from archiver.store.tables import tracked_streams
from archiver.store.viewer_stats import (
    ACCOUNT_KEY,
    last_stream_reads,
    move_viewer_watermarks,
    viewer_watermarks,
)
from archiver.vocabulary import StreamStatus

log = logging.getLogger(__name__)

# How often a stream that publishes no feed is read all the same.
SAFETY_READ = timedelta(days=1)
# Each walk holds a read's rows (a day of 100 streams' 5-minute periods, up to 28,800) until
# they are stored: at a concurrency of 64 all at once would be a lot of memory for little
# more speed.
WALKS_AT_ONCE = 8


def viewer_stats(
    *, engine: Engine, client: AnalyticsClient, settings: Settings, report: CycleReport
) -> None:
    """Read, store and settle the account's and the tracked streams' viewer statistics."""
    step = _Step(engine, client, settings, report)
    with transaction(engine) as conn:
        account_mark = viewer_watermarks(conn, ACCOUNT_VIEWER_STATS.dataset).get(ACCOUNT_KEY)
        stream_marks = viewer_watermarks(conn, STREAM_VIEWER_STATS.dataset)
        seen = dict(
            conn.execute(
                sa.select(tracked_streams.c.stream_name, tracked_streams.c.last_seen_at).where(
                    tracked_streams.c.status != StreamStatus.REFUSED
                )
            ).all()
        )
        feeds_read = feed_watermark(conn)
        # SQLite keeps whole seconds: this cycle's own read is at `now` less its fraction.
        if feeds_read is not None and feeds_read >= report.now.replace(microsecond=0):
            names = due_streams(seen, stream_marks, last_stream_reads(conn), report.now)
        else:  # a feed may have started unseen since the last complete feed read
            names = sorted(seen)
    account = step.walk(
        ACCOUNT_VIEWER_STATS,
        [ACCOUNT_KEY],
        step.since(account_mark, ACCOUNT_VIEWER_STATS),
        lambda since, until: read_account_stats(client, since, until),
    )
    if not names:
        return
    if account is None:
        try:
            account = find_account(client)
        except CYCLE_ENDING:
            raise
        except ApiError as exc:
            step.failed("could not learn the account's id", exc)
            return
        if account is None:
            log.info("no feed names the account: no stream has viewers to read")
            return
    groups: dict[datetime, list[str]] = defaultdict(list)
    for name in names:
        groups[step.since(stream_marks.get(name), STREAM_VIEWER_STATS)].append(name)
    per_read = STREAM_VIEWER_STATS.names_per_read
    chunks = [
        (since, group[k : k + per_read])
        for since, group in sorted(groups.items())
        for k in range(0, len(group), per_read)
    ]

    def walk(chunk: tuple[datetime, list[str]]) -> None:
        since, streams = chunk
        step.walk(
            STREAM_VIEWER_STATS,
            streams,
            since,
            lambda since, until: read_stream_stats(client, account, streams, since, until),
        )

    # The chunks' walks run side by side, as many as the client's concurrency up to
    # WALKS_AT_ONCE (each walk's windows in turn, each stored with its watermark, one store
    # at a time): a first read of 10,000 streams is 800 reads of a round trip each.
    ran = run_batched(
        walk,
        chunks,
        min(client.concurrency, WALKS_AT_ONCE),
        1,
        stopped=lambda: client.cancelled,
        stop=client.cancel,
    )
    with closing(ran):
        for _ in ran:
            pass


def due_streams(
    seen: dict[str, datetime | None],
    marks: dict[str, datetime],
    read_at: dict[str, datetime],
    now: datetime,
) -> list[str]:
    """The streams to read when every feed up to `now` is known (`seen`: last seen publishing
    or with traffic): those never read, read a day ago or more, or seen at or after their
    watermark (a feed running, or ended after it: periods not yet final)."""
    due = []
    for name, last in sorted(seen.items()):
        mark, read = marks.get(name), read_at.get(name)
        if mark is None or read is None or read <= now - SAFETY_READ:
            due.append(name)  # the safety read: statistics without a feed are not ruled out
        elif last is not None and last >= mark:
            due.append(name)  # its periods from the watermark on may hold viewers
    return due


class _Step:
    """One cycle's viewer reads: where each starts, and each read stored with its watermark."""

    def __init__(
        self, engine: Engine, client: AnalyticsClient, settings: Settings, report: CycleReport
    ) -> None:
        self.engine, self.client, self.settings, self.report = engine, client, settings, report
        self.settle = timedelta(minutes=settings.settle_minutes)
        # Reads run on several threads; the report and the database see one at a time.
        self.lock = threading.Lock()

    def since(self, watermark: datetime | None, query: Query) -> datetime:
        """Where a read starts: its watermark, or as many days back from now (on the period
        grid) as the setting its declaration names (`reach_setting`)."""
        if watermark is not None:
            return watermark
        days = timedelta(days=int(getattr(self.settings, query.reach_setting)))
        return first_unfinal_period(timedelta(0), self.report.now - days)

    def failed(self, what: str, exc: Exception) -> None:
        with self.lock:
            self.report.errors.append(f"viewers: {what}: {exc}")
        log.error("viewers: %s (going on without them): %s", what, exc)

    def walk(self, query: Query, keys: list[str], since: datetime, reader: Any) -> str | None:
        """Read from `since` to now a window at a time (pages stay well under the walk's
        bound), each stored with its watermark; stops at the first window that fails or
        refuses a row. The account the rows name (None: none did)."""
        account: str | None = None
        window = query.window
        assert window is not None  # declared for each viewer dataset
        while since <= self.report.now:
            until = since + window
            read = self.read(query, keys, since, until, reader)
            if read is None:
                break
            account = account or read.account
            if read.refused:
                break
            since = until
        return account

    def read(
        self, query: Query, keys: list[str], since: datetime, until: datetime, reader: Any
    ) -> StatRead | None:
        """Run one read and store it with its watermark; None when it failed."""
        report = self.report
        try:
            read: StatRead = reader(since, until)
        except CYCLE_ENDING:
            raise  # a refused secret (401) or no server at the URL: every request would fail
        except ApiError as exc:
            self.failed(f"reading {query.dataset} since {since.isoformat()} failed", exc)
            return None
        for reason in read.refused:
            log.warning("viewers: %s", reason)
        now, believed = report.now, report.belief.believed
        for row in read.rows:
            row["fetched_at"] = now
            row["is_final"] = believed and period_final(self.settle, row["period_start"], now)
        # A database failure ends the cycle, as it does while storing any answer.
        with self.lock:
            if self.client.cancelled:  # the cycle is ending (another walk failed, shutdown)
                return None
            report.errors.extend(f"viewers: {reason}" for reason in read.refused)
            with transaction(self.engine) as conn:
                written = save_rows(conn, query, read.rows)
                if believed and not read.refused:
                    mark = min(until, first_unfinal_period(self.settle, now))
                    move_viewer_watermarks(conn, query.dataset, keys, mark, now)
            report.rows += written
            table = query.table
            report.rows_by_table[table] = report.rows_by_table.get(table, 0) + written
        return read
