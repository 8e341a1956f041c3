"""`report --by stream`: whole months read from the monthly rollup rank exactly as days do."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from archiver.reading.report import bind_time, top_streams
from archiver.store.tables import stream_usage
from archiver.store.upsert import upsert_rows
from tests.test_query_times import usage

FIRST = datetime(2026, 9, 28, tzinfo=UTC)
DAYS = 100  # into January: four month boundaries, a year's end
STREAMS = ("a", "b", "c", "d", "e")


def _fill(engine: Engine) -> None:
    """Each stream's days, some as the vendor's Day rows, some only as hours, some as both
    (the Day row then speaks for the day): every way a day reaches stream_daily_usage."""
    pick = random.Random(7)
    rows = []
    for day in range(DAYS):
        start = FIRST + timedelta(days=day)
        for stream in STREAMS:
            form = pick.choice(("none", "day", "hours", "both"))
            if form in ("day", "both"):
                rows.append(usage(stream, "Day", start, pick.randrange(10**9)))
            if form in ("hours", "both"):
                for hour in pick.sample(range(24), 3):
                    rows.append(
                        usage(stream, "Hour", start + timedelta(hours=hour), pick.randrange(10**7))
                    )
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_usage, rows=rows)


def _by_days(
    conn: Connection, first: datetime, last: datetime, top: int
) -> list[tuple[str, int, int]]:
    """The ranking as the daily view alone gives it (what the report read before)."""
    query = sa.text(
        "SELECT stream_name, SUM(bytes_in), SUM(bytes_out) FROM stream_daily_usage "
        "WHERE day >= :start AND day < :stop GROUP BY stream_name "
        "ORDER BY SUM(bytes_out) DESC, stream_name LIMIT :top"
    )
    params = {"start": bind_time(conn, first), "stop": bind_time(conn, last), "top": top}
    return [(n, int(i), int(o)) for n, i, o in conn.execute(query, params)]


def test_a_ranking_over_months_equals_the_sum_of_its_days(engine: Engine) -> None:
    _fill(engine)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.integers(0, DAYS * 24),
        st.integers(0, DAYS * 24),
        st.integers(1, len(STREAMS) + 1),
    )
    def check(a: int, b: int, top: int) -> None:
        start = FIRST + timedelta(hours=min(a, b))
        stop = FIRST + timedelta(hours=max(a, b) + 1)
        with engine.connect() as conn:
            ranking, first, last = top_streams(conn, start=start, stop=stop, top=top)
            expected = _by_days(conn, first, last, top)
        assert [(r.stream, r.bytes_in, r.bytes_out) for r in ranking] == expected

    check()
    # The ranges that matter most, named: a whole quarter, a month's edges, one day.
    with engine.connect() as conn:
        for start, stop in (
            (FIRST, FIRST + timedelta(days=DAYS)),
            (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
            (datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)),
            (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ):
            ranking, first, last = top_streams(conn, start=start, stop=stop, top=10)
            assert ranking, (start, stop)
            got = [(r.stream, r.bytes_in, r.bytes_out) for r in ranking]
            assert got == _by_days(conn, first, last, 10)
