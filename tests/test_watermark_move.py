"""The store's watermark UPDATE is `Settlement.moves`: proved equal over random watermarks,
chunks, read times and settle delays, on real SQLite and real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from archiver.rules.finality import Settlement
from archiver.rules.plan import Policy, Scope
from archiver.store import state
from archiver.store.tables import sync_state
from archiver.timeutil import Resolution, add_buckets

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ASKED = ("a", "b", "c")  # the request's scopes
OUTSIDER = "z"  # same dataset and resolution, not in the request: never moves
SPAN = 3 * 24 * 3600  # watermarks and read times range this many seconds around the chunk


@st.composite
def cases(draw: st.DrawFn) -> tuple[Settlement, dict[str, datetime]]:
    resolution = draw(st.sampled_from([Resolution.HOUR, Resolution.DAY, Resolution.MONTH]))
    chunk_start = add_buckets(T0, resolution, draw(st.integers(0, 40)))
    chunk_stop = add_buckets(chunk_start, resolution, draw(st.integers(1, 40)))
    start_s = int((chunk_start - T0).total_seconds())
    stop_s = int((chunk_stop - T0).total_seconds())
    fetched = T0 + timedelta(seconds=draw(st.integers(start_s - SPAN, stop_s + SPAN)))
    policy = Policy(settle=timedelta(minutes=draw(st.integers(0, 3 * 60))))
    settlement = Settlement(
        policy, resolution, chunk_start, chunk_stop, fetched, settles=draw(st.booleans())
    )
    # Watermarks on bucket edges (where off-by-one errors live) and at any whole second
    # (SQLite stores whole seconds) before, inside and after the chunk.
    edge = st.integers(-3, 43).map(lambda n: add_buckets(chunk_start, resolution, n))
    anywhere = st.integers(start_s - SPAN, stop_s + SPAN).map(lambda s: T0 + timedelta(seconds=s))
    marks = st.one_of(edge, anywhere, st.just(chunk_start), st.just(settlement.target))
    names = (*ASKED, OUTSIDER)
    return settlement, {name: draw(marks) for name in names}


def _watermarks(engine: Engine) -> dict[str, datetime]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sync_state.c.stream_name, sync_state.c.watermark))
        return {row.stream_name: row.watermark for row in rows}


@settings(
    max_examples=150,
    deadline=None,
    # One migrated archive serves every example; each example starts from an empty sync_state.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=cases())
def test_the_stores_update_moves_exactly_what_the_rule_moves(
    engine: Engine, case: tuple[Settlement, dict[str, datetime]]
) -> None:
    settlement, before = case
    scope = {name: Scope("stream_usage", name, settlement.resolution) for name in before}
    with engine.begin() as conn:
        conn.execute(sa.delete(sync_state))
        state.start_scopes(
            conn=conn,
            watermarks={scope[name]: mark for name, mark in before.items()},
            gaps=[],
            recorded_at=T0,
        )
    with engine.begin() as conn:
        written = state.store_response(
            conn=conn,
            dataset="stream_usage",
            scopes=[scope[name] for name in ASKED],
            rows=[],
            settlement=settlement,
        )
    expected = {name: settlement.moves(mark) for name, mark in before.items() if name in ASKED}
    expected[OUTSIDER] = before[OUTSIDER]
    assert _watermarks(engine) == expected
    assert written.advanced == sum(expected[name] != before[name] for name in ASKED)
