"""The vendor's GraphQL history: feeds from the sessions, viewers per 5-minute stat period.

Feeds: every session is one feed, started and ended with the session (`ended` None while
it runs); `redundant_percent` of the sessions (those at least 3 minutes long) have a second,
backup feed at once, starting seconds to minutes after the primary and ending before it.
The vendor drops a feed `feed_retention_days` after it ended.

Viewers: a stream has StreamStat rows only for the periods its session overlaps, so every
hour with viewers is an hour with REST traffic and the other way round. `active` is the
number watching at the period's end (0 once the session has ended), between 1 and the
hour's REST `views`; every row has views started and ended, and
`active(p) = active(p-1) + numStarted(p) - numEnded(p)`. AccountStat rows are the sums over
streams, plus `streams`, the streams published at the period's end. A period's rows appear
once it has ended, final at once, and are never purged.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from archiver.simulator.draws import draw_hash
from archiver.simulator.periods import (
    NO_SESSION,
    PERIOD_MINUTES,
    PeriodStat,
    SessionStats,
    at,
    periods_between,
    seconds,
)
from archiver.simulator.traffic import Traffic
from archiver.simulator.vendor import ACCOUNT_ID


@dataclass(frozen=True)
class Feed:
    """One publication into a stream: `[started, ended)` in seconds since the epoch."""

    stream: int
    name: str
    started: int
    ended: int
    backup: bool


class Audience:
    """Feeds and viewer statistics of a Traffic model, computed on demand."""

    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic
        self._periods = lru_cache(maxsize=100_000)(self._periods_uncached)
        self._day_feeds = lru_cache(maxsize=4096)(self._day_feeds_uncached)
        # The account's sums of a day, kept as computed (a day's streams never change): a read
        # of the account then costs its days, not every stream's periods again. One thread
        # sums a day; concurrent reads of it wait for that result instead of summing it too.
        self._account_days: dict[int, tuple[tuple[int, int, int, int, int], ...]] = {}
        self._account_lock = threading.Lock()
        self._answers: OrderedDict[Hashable, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(
        self, key: Hashable, compute: Callable[[], list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """The rows of a recent selection (paging asks the same one again, page by page)."""
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        rows = compute()
        with self._lock:
            self._answers[key] = rows
            while len(self._answers) > 16:
                self._answers.popitem(last=False)
        return rows

    # --- feeds -----------------------------------------------------------------------------

    def session_feeds(self, index: int, day: int) -> list[Feed]:
        """The feeds of the session stream `index` starts on `day`."""
        session = self.traffic.session(index, day)
        if session is None:
            return []
        name = self.traffic.streams[index].name
        start, end = session.start * 60, session.end * 60
        feeds = [Feed(index, name, start, end, False)]
        h = draw_hash(self.traffic.config.seed, 11, index, day)
        if h % 100 < self.traffic.config.redundant_percent and end - start >= 180:
            # A backup encoder joins 1 s to 2 min late and leaves up to a minute early.
            late = 1 + (h >> 8) % min(120, (end - start) // 3)
            early = (h >> 20) % min(60, (end - start) // 3)
            feeds.append(Feed(index, name, start + late, end - early, True))
        return feeds

    def feeds(self, now: datetime, *, retained: bool = True) -> list[Feed]:
        """Every feed started by `now`, in `_id` order (started, stream, primary first).

        `retained`: only those the vendor still holds (ended at most the retention ago).
        """
        config = self.traffic.config
        now_s = seconds(now)
        keep_from = now_s - config.feed_retention_days * 86400
        first_day = (keep_from // 86400 - 1) if retained else self._first_day()
        found: list[Feed] = []
        for day in range(first_day, now_s // 86400 + 1):
            for feed in self._day_feeds(day):
                if feed.started > now_s:
                    continue
                if retained and feed.ended <= now_s and feed.ended < keep_from:
                    continue
                found.append(feed)
        found.sort(key=lambda f: (f.started, f.stream, f.backup))
        return found

    def _day_feeds_uncached(self, day: int) -> tuple[Feed, ...]:
        return tuple(f for s in self.traffic.streams for f in self.session_feeds(s.index, day))

    def _first_day(self) -> int:
        born = min((s.born_hour for s in self.traffic.streams), default=0)
        return born // 24 - 1

    def first_instant(self) -> datetime:
        """No session starts before this (the day before the first stream exists)."""
        return at(self._first_day() * 86400)

    # --- viewers ---------------------------------------------------------------------------

    def _periods_uncached(self, index: int, day: int) -> SessionStats:
        """The viewer statistics of the session stream `index` starts on `day`."""
        session = self.traffic.session(index, day)
        if session is None:
            return NO_SESSION
        hour_views = self.traffic.hour_views
        # The session's draws come from one generator seeded by its stream and day: a hash
        # per period cost the account's sums 2 us a row, millions of rows at 10,000 streams.
        draws = random.Random(draw_hash(self.traffic.config.seed, 12, index, day)).getrandbits
        actives: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        previous = 0
        hour, views = -1, 1
        first = session.start // PERIOD_MINUTES
        for period in range(first, (session.end - 1) // PERIOD_MINUTES + 1):
            active = 0
            draw = draws(64)
            if (period + 1) * PERIOD_MINUTES < session.end:  # still publishing at its end
                if period * PERIOD_MINUTES // 60 != hour:
                    hour = period * PERIOD_MINUTES // 60
                    views = max(hour_views(index, hour) or 1, 1)
                active = 1 + (draw & 0xFFFFFFFF) % views
            churn = 1 + (draw >> 32) % 3
            actives.append(active)
            starts.append((active - previous if active > previous else 0) + churn)
            ends.append((previous - active if previous > active else 0) + churn)
            previous = active
        return SessionStats(first, tuple(actives), tuple(starts), tuple(ends))

    def stream_stats(
        self, start: datetime, stop: datetime, now: datetime, streams: list[int] | None = None
    ) -> list[PeriodStat]:
        """Stream rows of the periods starting in `[start, stop)` that ended by `now`,
        in `_id` order (period, stream); `streams`: only those streams' (by index)."""
        first, last = periods_between(start, stop, now)
        if last <= first:
            return []
        indices = range(len(self.traffic.streams)) if streams is None else streams
        found: list[PeriodStat] = []
        per_day = 1440 // PERIOD_MINUTES
        # A session that started the day before may still publish on the first day.
        for day in range(first // per_day - 1, (last - 1) // per_day + 1):
            for index in indices:
                found.extend(self._periods(index, day).rows(index, first, last))
        found.sort(key=lambda r: (r.period, r.stream))
        return found

    def prepare(self, until: datetime) -> None:
        """Sum the account's statistics of every day up to `until`'s now, before any read."""
        for day in range(self._first_day(), seconds(until) // 86400 + 1):
            self._account_day(day)

    def _account_day(self, day: int) -> tuple[tuple[int, int, int, int, int], ...]:
        rows = self._account_days.get(day)
        if rows is None:
            with self._account_lock:
                rows = self._account_days.get(day)
                if rows is None:
                    rows = self._account_days[day] = self._account_day_uncached(day)
        return rows

    def _account_day_uncached(self, day: int) -> tuple[tuple[int, int, int, int, int], ...]:
        """Every stream's rows of the periods of `day`, summed per period."""
        per_day = 1440 // PERIOD_MINUTES
        first = day * per_day
        # Per period of the day: active, started, ended, streams (lists, not a dict: this
        # loop sees every stream's every row of the day).
        active, started, ended, streams = ([0] * per_day for _ in range(4))
        for index in range(len(self.traffic.streams)):
            # A session that started the day before may still publish on this day.
            for source in (day - 1, day):
                stats = self._periods(index, source)
                low = max(first - stats.first, 0)
                high = min(first + per_day - stats.first, len(stats.active))
                for k in range(low, high):
                    slot = stats.first + k - first
                    active[slot] += stats.active[k]
                    started[slot] += stats.started[k]
                    ended[slot] += stats.ended[k]
                    streams[slot] += 1 if stats.active[k] else 0
        return tuple(
            (first + slot, active[slot], started[slot], ended[slot], streams[slot])
            for slot in range(per_day)
            if started[slot]  # a period with a row of any stream (every row starts >= 1)
        )

    def account_stats(
        self, start: datetime, stop: datetime, now: datetime
    ) -> list[tuple[int, int, int, int, int]]:
        """Account rows (period, active, numStarted, numEnded, streams), in period order: the
        sums of `stream_stats` over every stream."""
        first, last = periods_between(start, stop, now)
        if last <= first:
            return []
        per_day = 1440 // PERIOD_MINUTES
        return [
            row
            for day in range(first // per_day, (last - 1) // per_day + 1)
            for row in self._account_day(day)
            if first <= row[0] < last
        ]

    # --- in the vendor's words -------------------------------------------------------------

    def feed_record(self, feed: Feed, now: datetime) -> dict[str, Any]:
        """A feed as the GraphQL API shows it at `now`."""
        active = seconds(now) < feed.ended
        return {
            "accountId": ACCOUNT_ID,
            "streamId": f"{ACCOUNT_ID}/{feed.name}",
            "name": feed.name,
            "started": at(feed.started),
            "ended": None if active else at(feed.ended),
            "active": active,
        }

    def stream_stat_record(self, row: PeriodStat) -> dict[str, Any]:
        """A StreamStat as the GraphQL API shows it."""
        name = self.traffic.streams[row.stream].name
        return {
            "accountId": ACCOUNT_ID,
            "streamId": f"{ACCOUNT_ID}/{name}",
            "from": at(row.period * PERIOD_MINUTES * 60),
            "to": at((row.period + 1) * PERIOD_MINUTES * 60),
            "active": row.active,
            "numStarted": row.started,
            "numEnded": row.ended,
        }

    @staticmethod
    def account_stat_record(row: tuple[int, int, int, int, int]) -> dict[str, Any]:
        """An AccountStat as the GraphQL API shows it."""
        period, active, started, ended, streams = row
        return {
            "accountId": ACCOUNT_ID,
            "from": at(period * PERIOD_MINUTES * 60),
            "to": at((period + 1) * PERIOD_MINUTES * 60),
            "active": active,
            "numStarted": started,
            "numEnded": ended,
            "streams": streams,
        }
