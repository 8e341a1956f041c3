"""Deterministic synthetic traffic: computed from the seed on demand, never stored.

Every stream has at most one session starting on each UTC day, at minute resolution: by
default a few hours in the daytime, sometimes across midnight; with `session_minutes` any
length from minutes to six hours. An active hour carries per-country
metrics; bandwidth is the sum over countries; days and months are exact sums of hours and
the account is the exact sum of the streams. Visibility follows the vendor: an hour shows
`q/4` of its final value after `q` quarter-hour refreshes, and is final after the fourth.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from archiver.simulator.buckets import EPOCH, Resolution, floor, next_start
from archiver.simulator.draws import diurnal_factor, draw_hash, draw_views
from archiver.simulator.model import (
    GEO_FIELDS,
    SESSION_FIRST_MINUTE,
    Session,
    SimConfig,
    Stream,
    Usage,
)

# Importers of this module's former contents keep working.
__all__ = [
    "EPOCH",
    "GEO_FIELDS",
    "Session",
    "SimConfig",
    "Stream",
    "Traffic",
    "Usage",
    "bucket_starts",
    "hour_index",
    "hour_start",
    "refresh_time",
]

HOUR = 3600
DAY = 86400
QUARTER = 900
MINUTE = 60
COUNTRIES = ("US", "GB", "DE", "FR", "BR", "MX", "CA", "JP", "IN", "AU", "SG", "ZA")


def hour_index(moment: datetime) -> int:
    """Whole hours since the Unix epoch."""
    return int((moment - EPOCH).total_seconds()) // HOUR


def hour_start(index: int) -> datetime:
    """The start of hour number `index`."""
    return EPOCH + timedelta(hours=index)


class Traffic:
    """The simulated account: streams, sessions and their metrics, hour by hour."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        seed = config.seed
        origin_hour = hour_index(config.origin)
        initial = config.streams if config.initial_streams is None else config.initial_streams
        late = max(config.streams - initial, 1)
        streams: list[Stream] = []
        for i in range(config.streams):
            h = draw_hash(seed, 1, i)
            if i < initial:
                born = origin_hour - config.history_days * 24
            else:
                born = origin_hour + int((i - initial + 1) * config.growth_days * 24 / late)
            if i >= config.streams - config.unreportable_streams:
                name = f"promo--{i}"
            elif i % 7 == 3:
                name = str(300 + i)  # names that look like numbers stay strings
            else:
                name = f"stream-{i:04d}"
            count = 1 + h % 4
            first = (h >> 8) % len(COUNTRIES)
            countries = tuple(COUNTRIES[(first + k * 5) % len(COUNTRIES)] for k in range(count))
            died = None
            if config.lifetime_days is not None and i % 3 == 2:
                died = max(born, origin_hour) + int(config.lifetime_days * 24)
            streams.append(
                Stream(i, name, born, died, countries, (h >> 16) % 5 == 0, (h >> 20) % 3 == 0)
            )
        self.streams = streams
        self.by_name = {s.name: s for s in streams}
        self._sessions = lru_cache(maxsize=200_000)(self._sessions_uncached)
        # The account's sums, one day at a time, each computed once: at 10,000 streams a day
        # costs about half a second, and 64 concurrent requests for the same months used to
        # sum the same days side by side until each took longer than the client's timeout.
        self._days: dict[int, dict[int, Usage]] = {}
        self._days_lock = threading.Lock()
        # Before the first stream is born no session can start: those days are empty at once.
        self._first_day = min((s.born_hour for s in streams), default=0) // 24

    # --- sessions ------------------------------------------------------------------------

    def _sessions_uncached(self, index: int, day: int) -> Session | None:
        """The session stream `index` starts on `day`, if any."""
        stream = self.streams[index]
        seed = self.config.seed
        h = draw_hash(seed, 2, index, day)
        if h % 100 >= self.config.session_chance_percent:
            return None
        if self.config.session_minutes is None:
            first = day * 24 + 5 + (h >> 8) % 19  # 05:00 to 23:00 UTC, some cross midnight
            last = first + (h >> 16) % 5
            # Publishing starts some minutes into the first hour and stops in the last one.
            start = first * 60 + draw_hash(seed, 3, index, first) % 40
            end = max(last * 60 + 20 + draw_hash(seed, 4, index, first) % 41, start + 1)
        else:
            shortest, longest = self.config.session_minutes
            start = day * 1440 + SESSION_FIRST_MINUTE + (h >> 8) % (1440 - SESSION_FIRST_MINUTE)
            end = start + shortest + (h >> 24) % (longest - shortest + 1)
        hour = start // 60
        if hour < stream.born_hour or (stream.died_hour is not None and hour >= stream.died_hour):
            return None
        return Session(start, end)

    def session(self, index: int, day: int) -> Session | None:
        """The session stream `index` starts on `day` (days since the epoch), if any."""
        return self._sessions(index, day)

    def live_session(self, index: int, hour: int) -> Session | None:
        """The session of stream `index` that publishes in `hour`, if any."""
        day = hour // 24
        for d in (day, day - 1):
            session = self._sessions(index, d)
            if session is not None and session.first_hour <= hour <= session.last_hour:
                return session
        return None

    def stream_hour(self, index: int, hour: int) -> Usage | None:
        """Final metrics of stream `index` in `hour`, or None when it was not live."""
        session = self.live_session(index, hour)
        if session is None:
            return None
        return self._usage(index, hour, session)

    def hour_views(self, index: int, hour: int) -> int | None:
        """Views of stream `index` in `hour` summed over its countries, as `stream_hour`
        gives them, or None when it was not live (the viewer statistics' only need of an
        hour: the countries' other metrics are not drawn)."""
        if self.live_session(index, hour) is None:
            return None
        diurnal, prefix = diurnal_factor(index, hour), draw_hash(self.config.seed, 5, index, hour)
        count = len(self.streams[index].countries)
        return sum(draw_views(diurnal, draw_hash(k, value=prefix)) for k in range(count))

    def _usage(self, index: int, hour: int, session: Session) -> Usage:
        stream = self.streams[index]
        seed = self.config.seed
        publish_seconds = max(session.minutes_in(hour), 1) * 60
        diurnal = diurnal_factor(index, hour)
        usage = Usage()
        prefix = draw_hash(seed, 5, index, hour)  # taken once for every country of the hour
        for k, country in enumerate(stream.countries):
            h = draw_hash(k, value=prefix)
            views = draw_views(diurnal, h)
            view_seconds = views * (publish_seconds * (30 + (h >> 8) % 71) // 100)
            bytes_out = view_seconds * (150_000 + (h >> 16) % 350_000)
            home = k == 0
            usage.geo[country] = [
                1 if home else 0,
                views,
                publish_seconds if home else 0,
                view_seconds,
                publish_seconds * (250_000 + (h >> 24) % 250_000) if home else 0,
                bytes_out,
            ]
        bytes_out = usage.bandwidth()[1]
        if stream.restreams:
            usage.extra[1] = bytes_out // 10
            usage.extra[2] = publish_seconds
        if stream.cascades:
            usage.extra[4] = bytes_out // 20
        return usage

    # --- buckets -------------------------------------------------------------------------

    def prepare(self, until: datetime) -> None:
        """Sum the account's usage of every day up to `until`'s, before any request asks."""
        for day in range(self._first_day, hour_index(until) // 24 + 1):
            self._day_account(day)

    def _day_account(self, day: int) -> dict[int, Usage]:
        """Account metrics contributed by sessions that start on `day`, per hour (kept)."""
        hours = self._days.get(day)
        if hours is None:
            with self._days_lock:  # one thread sums a day; the others wait for its result
                hours = self._days.get(day)
                if hours is None:
                    hours = self._days[day] = self._day_account_uncached(day)
        return hours

    def _day_account_uncached(self, day: int) -> dict[int, Usage]:
        hours: dict[int, Usage] = {}
        if day < self._first_day:
            return hours
        for stream in self.streams:
            session = self._sessions(stream.index, day)
            if session is None:
                continue
            for hour in range(session.first_hour, session.last_hour + 1):
                hours.setdefault(hour, Usage()).add(self._usage(stream.index, hour, session))
        return hours

    def account_hour(self, hour: int) -> Usage | None:
        """Final account metrics in `hour`."""
        total: Usage | None = None
        for day in (hour // 24, hour // 24 - 1):
            part = self._day_account(day).get(hour)
            if part is not None:
                total = total or Usage()
                total.add(part)
        return total

    def bucket(
        self,
        stream: str | None,
        resolution: Resolution,
        start: datetime,
        *,
        visible_until: datetime,
    ) -> Usage:
        """Metrics of one bucket as shown after the refresh at `visible_until`."""
        total = Usage()
        stop = next_start(start, resolution)
        first, last = hour_index(start), hour_index(min(stop, visible_until + timedelta(hours=1)))
        index = None if stream is None else self.by_name[stream].index
        refresh = int((visible_until - EPOCH).total_seconds())
        for hour in range(first, last):
            quarters = min(max((refresh - hour * HOUR) // QUARTER, 0), 4)
            if quarters == 0:
                continue
            usage = self.account_hour(hour) if index is None else self.stream_hour(index, hour)
            if usage is not None:
                total.add(usage, quarters)
        return total

    def live_streams(self, now: datetime) -> Iterator[tuple[Stream, Session, bool]]:
        """Streams whose session started within the hour before `now`: (stream, session, live).

        This is the vendor's monitoring rule: a stream created and gone while nobody asked
        for an hour is never listed.
        """
        minute = int((now - EPOCH).total_seconds()) // MINUTE
        day = minute // 1440
        for stream in self.streams:
            for d in (day, day - 1):
                session = self._sessions(stream.index, d)
                if session is not None and minute - 60 < session.start <= minute:
                    yield stream, session, session.start <= minute < session.end
                    break

    def session_events(
        self, after: datetime, until: datetime
    ) -> list[tuple[datetime, str, Stream, Session]]:
        """Session starts and ends in `(after, until]`, in time order: (when, event, ...)."""
        first = int((after - EPOCH).total_seconds()) // MINUTE
        last = int((until - EPOCH).total_seconds()) // MINUTE
        events: list[tuple[int, int, str, Stream, Session]] = []
        for day in range(first // 1440 - 1, last // 1440 + 1):
            for stream in self.streams:
                session = self._sessions(stream.index, day)
                if session is None:
                    continue
                for moment, event in ((session.start, "started"), (session.end, "ended")):
                    if first < moment <= last:
                        events.append((moment, stream.index, event, stream, session))
        events.sort(key=lambda e: (e[0], e[2] != "ended", e[1]))
        return [(EPOCH + timedelta(minutes=m), ev, st, se) for m, _, ev, st, se in events]


def refresh_time(now: datetime) -> datetime:
    """The vendor's last quarter-hour refresh at or before `now`."""
    now = now.astimezone(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)


def bucket_starts(start: datetime, stop: datetime, resolution: Resolution) -> Iterable[datetime]:
    """Bucket starts of `[start, stop)`, `start` floored to the resolution."""
    current = floor(start, resolution)
    while current < stop:
        yield current
        current = next_start(current, resolution)
