"""Each stream's publishing per day (`stream_daily_sessions`): the write path and migration 0013
agree with a minute-by-minute count, on both databases, through a feed's whole life."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from archiver.datasets import STREAM_SESSIONS
from archiver.reading.export import _as_text
from archiver.store import db
from archiver.store.db import transaction
from archiver.store.query_rows import save_rows
from archiver.store.session_days import DayFigures, Feed, day_figures, refresh_session_days
from archiver.store.tables import stream_sessions
from bench.common import migration
from tests.conftest import archive_at

D = datetime(2026, 11, 20, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return D + timedelta(minutes=minutes)


def counted(feeds: list[Feed], day: datetime) -> DayFigures | None:
    """The figures of `day` counted minute by minute (every time here is a whole minute)."""
    first = int((day - D).total_seconds()) // 60
    live = {
        m
        for f in feeds
        for m in range(int((f.started - D).total_seconds()) // 60, first + 1440)
        if m >= first and at(m) < f.known_until
    }
    started = sum(day <= f.started < day + timedelta(days=1) for f in feeds)
    if not started and not live:
        return None
    running = any(
        f.running
        and f.known_until < day + timedelta(days=1)
        and day < max(f.known_until, f.started + timedelta(seconds=1))
        and f.started < day + timedelta(days=1)
        for f in feeds
    )
    return DayFigures(started, len(live) * 60, running)


feeds_strategy = st.lists(
    st.tuples(st.integers(0, 3 * 1440), st.integers(0, 2 * 1440), st.booleans()).map(
        lambda t: Feed("cam", at(t[0]), at(t[0] + t[1]), t[2])
    ),
    max_size=6,
)


@given(feeds_strategy)
def test_the_rule_and_the_migrations_copy_count_as_the_minutes_do(feeds: list[Feed]) -> None:
    days = [D + timedelta(days=n) for n in range(6)]
    expected = {day: counted(feeds, day) for day in days}
    assert {day: day_figures(feeds, day) for day in days} == expected
    filled = migration("0013_session_days.py").stream_days(
        [(f.started, f.known_until, f.running) for f in feeds]
    )
    assert {d: DayFigures(*figures) for d, figures in filled.items()} == {
        d: f for d, f in expected.items() if f is not None
    }


def session(name: str, start: int, end: int | None, fetched: int, ordinal: int = 0) -> Any:
    return {
        "stream_name": name,
        "started": at(start),
        "feed_ordinal": ordinal,
        "ended": None if end is None else at(end),
        "active": end is None,
        "duration_seconds": None if end is None else (end - start) * 60,
        "fetched_at": at(fetched),
    }


def days(engine: Engine) -> dict[tuple[str, str], tuple[int, int, bool]]:
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT * FROM stream_daily_sessions"))
        return {(r[0], _as_text(r[1])): (r[2], r[3], bool(r[4])) for r in found}


def write(engine: Engine, *rows: Any) -> None:
    with transaction(engine) as conn:
        save_rows(conn, STREAM_SESSIONS, list(rows))


DAY0, DAY1 = "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"


def test_redundant_feeds_count_once_and_midnight_splits_a_session(engine: Engine) -> None:
    write(
        engine,
        session("cam", 600, 660, 1500),  # 10:00-11:00
        session("cam", 630, 690, 1500),  # a backup encoder, 10:30-11:30
        session("cam", 1410, 1485, 1500),  # 23:30 to 00:45 the next day
        session("live", 1320, None, 1500),  # 22:00, still running at 01:00
    )
    assert days(engine) == {
        ("cam", DAY0): (3, 120 * 60, False),
        ("cam", DAY1): (0, 45 * 60, False),
        ("live", DAY0): (1, 120 * 60, False),  # complete: the feed ran past midnight
        ("live", DAY1): (0, 60 * 60, True),  # known up to the read: it may grow
    }
    write(engine, session("live", 1320, 1470, 1560))  # ended at 00:30
    assert days(engine)[("live", DAY1)] == (0, 30 * 60, False)
    write(engine, session("live", 1320, 1500, 1620))  # an ended session never changes
    assert days(engine)[("live", DAY1)] == (0, 30 * 60, False)


def test_a_day_seen_only_through_a_running_feed_goes_when_its_end_is_told(engine: Engine) -> None:
    # Our clock ran ahead of the vendor's: the feed was read running at 00:10, then reported
    # ended at 23:55 the day before. The next day held nothing after all.
    write(engine, session("skew", 1430, None, 1450))
    assert days(engine) == {("skew", DAY0): (1, 600, False), ("skew", DAY1): (0, 600, True)}
    write(engine, session("skew", 1430, 1435, 1460))
    assert days(engine) == {("skew", DAY0): (1, 300, False)}


def test_a_feed_seen_at_its_start_is_a_session_of_no_time_yet(engine: Engine) -> None:
    write(engine, session("new", 700, None, 700))
    assert days(engine) == {("new", DAY0): (1, 0, True)}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def at_0012(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh archive migrated to 0012 only."""
    yield from archive_at(request, tmp_path, "0012")


def test_0013_fills_the_days_as_the_write_path_computes_them(at_0012: sa.Engine) -> None:
    rng = random.Random(13)
    rows = []
    for n in range(40):
        start = rng.randrange(0, 5 * 1440)
        end = start + rng.randrange(0, 2000)
        running = rng.random() < 0.2
        fetched = end + rng.randrange(0, 30)
        rows.append(session(f"s{n % 7}", start, None if running else end, fetched, n))
    with at_0012.begin() as conn:
        conn.execute(sa.insert(stream_sessions), rows)
    db.upgrade(at_0012)
    filled = days(at_0012)
    assert len(filled) > 10
    assert any(v[2] for v in filled.values())
    with transaction(at_0012) as conn:
        conn.execute(sa.text("DELETE FROM stream_daily_feeds"))
        refresh_session_days(conn, rows)
    assert days(at_0012) == filled


def test_a_new_feed_is_counted_with_one_that_started_days_before(engine: Engine) -> None:
    # A 24/7 stream: the feed started two days ago still runs (then ends) when a backup feed
    # starts; the backup's day is recomputed with the old feed in it, not from the backup alone.
    day2 = "2026-11-22T00:00:00Z"
    write(engine, session("tv", 600, None, 2 * 1440 + 60))  # from day 0, 10:00; read at 01:00
    write(engine, session("tv", 2 * 1440 + 10, 2 * 1440 + 20, 2 * 1440 + 70))
    assert days(engine)[("tv", day2)] == (1, 60 * 60, True)
    write(engine, session("tv", 600, 2 * 1440 + 50, 2 * 1440 + 80))  # the old feed ends
    write(engine, session("tv", 2 * 1440 + 40, 2 * 1440 + 45, 2 * 1440 + 90, ordinal=0))
    assert days(engine)[("tv", day2)] == (2, 50 * 60, False)
