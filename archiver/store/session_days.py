"""Each stream's days of publishing (`stream_daily_feeds`), recomputed from its sessions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from archiver.store.tables import stream_daily_feeds, stream_sessions
from archiver.timeutil import Resolution, floor

DAY = timedelta(days=1)
_NAMES_PER_SELECT = 500  # under SQLite's bound-parameter limit, with room to spare


class Feed(NamedTuple):
    """One session as the day figures see it: a feed still running ends, so far, when last read."""

    stream_name: str
    started: datetime
    known_until: datetime  # `ended`, or `fetched_at` while it runs
    running: bool


class DayFigures(NamedTuple):
    """A stream's day: sessions started in it, seconds with a feed live, whether a feed still
    running may add to them."""

    sessions: int
    publishing_seconds: int
    active: bool


def day_figures(feeds: Iterable[Feed], day: datetime) -> DayFigures | None:
    """The figures of `day` from the stream's feeds (any: those outside it count nothing), or
    None when no feed started or ran in it. Redundant feeds running at once count their time
    once: publishing time is the union of the feeds' time in the day."""
    stop = day + DAY
    started = 0
    running = False
    spans: list[tuple[datetime, datetime]] = []
    for feed in feeds:
        started += day <= feed.started < stop
        begin, end = max(feed.started, day), min(feed.known_until, stop)
        if begin < end or (begin == end and day <= feed.started < stop):
            spans.append((begin, end))
            # Known only up to a read inside the day: the next read may add to it.
            running = running or (feed.running and feed.known_until < stop)
    if not spans:
        return None
    seconds, reached = 0.0, day
    for begin, end in sorted(spans):
        if end > reached:
            seconds += (end - max(begin, reached)).total_seconds()
            reached = end
    return DayFigures(started, int(seconds), running)


def _feed(row: Mapping[str, Any]) -> Feed:
    ended = row["ended"]
    until = row["fetched_at"] if ended is None else ended
    return Feed(row["stream_name"], row["started"], max(until, row["started"]), ended is None)


def _days(feed: Feed, read_at: datetime) -> Iterable[datetime]:
    # Through the read's own day as well: a feed once seen running past its (later reported)
    # end counted those days, and they are recomputed without it.
    day, last = floor(feed.started, Resolution.DAY), max(feed.known_until, read_at)
    while day <= last:
        yield day
        day += DAY


def _overlapping(
    conn: Connection, names: list[str], first: datetime, last: datetime
) -> Iterable[dict[str, Any]]:
    """The sessions of `names` that reach into `[first, last)`, each once, read by index only
    (a year of a stream's sessions is not scanned): those started in it, and those started
    before it that still ran at `first` (running, or ended at or after it)."""
    s = stream_sessions.c
    columns = (s.stream_name, s.started, s.feed_ordinal, s.ended, s.fetched_at)
    named = s.stream_name.in_(names)
    earlier = (named, s.started < first)
    seen: set[tuple[str, datetime, int]] = set()
    for where in (
        (named, s.started >= first, s.started < last),  # the key
        (*earlier, s.ended.is_(None)),  # ix_stream_sessions_stream_name_ended
        (*earlier, s.ended >= first),  # ix_stream_sessions_stream_name_ended
    ):
        for row in conn.execute(sa.select(*columns).where(*where)).mappings():
            key = (row["stream_name"], row["started"], row["feed_ordinal"])
            if key not in seen:
                seen.add(key)
                yield dict(row)


def refresh_session_days(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bring `stream_daily_feeds` up to date with session `rows`, just written in this
    transaction: every day they touch is recomputed from the sessions now stored."""
    keys = {(f.stream_name, d) for r in rows for f in [_feed(r)] for d in _days(f, r["fetched_at"])}
    if not keys:
        return
    names = sorted({name for name, _ in keys})
    first, last = min(d for _, d in keys), max(d for _, d in keys) + DAY
    stored: dict[str, list[Feed]] = {}
    for i in range(0, len(names), _NAMES_PER_SELECT):
        for row in _overlapping(conn, names[i : i + _NAMES_PER_SELECT], first, last):
            stored.setdefault(row["stream_name"], []).append(_feed(row))
    upserts, emptied = [], []
    for name, day in sorted(keys):
        figures = day_figures(stored.get(name, ()), day)
        if figures is None:
            emptied.append({"n": name, "d": day})
        else:
            upserts.append({"stream_name": name, "day": day, **figures._asdict()})
    if emptied:
        t = stream_daily_feeds.c
        conn.execute(
            sa.delete(stream_daily_feeds).where(
                t.stream_name == sa.bindparam("n"), t.day == sa.bindparam("d")
            ),
            emptied,
        )
    if upserts:
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
            stream_daily_feeds
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["stream_name", "day"],
                set_={c: insert.excluded[c] for c in DayFigures._fields},
            ),
            upserts,
        )
