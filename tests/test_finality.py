"""Finality and watermark moves: a pure rule (no database), and the store applying it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from archiver.datasets import ACCOUNT_SERIES, STREAMS_SERIES
from archiver.rules import finality
from archiver.rules.finality import Settlement
from archiver.rules.plan import Policy, Scope
from archiver.store import state
from archiver.store.tables import stream_usage, sync_state
from archiver.timeutil import Resolution, add_buckets, floor
from tests.test_store import usage_row

H = Resolution.HOUR
POLICY = Policy(settle=timedelta(minutes=60))
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def test_a_bucket_is_final_exactly_at_its_end_plus_settle() -> None:
    start = T0 + timedelta(hours=3)
    at = start + timedelta(hours=1) + POLICY.settle
    assert Settlement(POLICY, H, T0, T0 + timedelta(days=1), at).final(start)
    assert not Settlement(POLICY, H, T0, T0 + timedelta(days=1), at - timedelta(seconds=1)).final(
        start
    )


def test_the_target_stays_inside_the_chunk() -> None:
    chunk = (T0 + timedelta(hours=10), T0 + timedelta(hours=20))
    long_after = T0 + timedelta(days=3)
    assert Settlement(POLICY, H, *chunk, long_after).target == chunk[1]
    assert Settlement(POLICY, H, *chunk, T0).target == chunk[0]
    at = T0 + timedelta(hours=15, minutes=30)  # hours up to 14:00 are final
    assert Settlement(POLICY, H, *chunk, at).target == T0 + timedelta(hours=14)


def test_an_answer_whose_time_is_not_believed_settles_nothing() -> None:
    chunk = (T0, T0 + timedelta(hours=10))
    doubted = Settlement(POLICY, H, *chunk, T0 + timedelta(days=30), settles=False)
    assert not any(doubted.final(T0 + timedelta(hours=h)) for h in range(10))
    assert doubted.target == chunk[0]
    assert doubted.moves_from == (chunk[0], chunk[0])  # an empty range: no watermark moves
    for hours in (-1, 0, 5, 10):
        watermark = T0 + timedelta(hours=hours)
        assert doubted.moves(watermark) == watermark


def test_reach_is_the_vendors_exact_line_and_the_margin_only_doubts_a_zero() -> None:
    policy = Policy(margin=timedelta(minutes=90))
    now = T0 + timedelta(days=7, minutes=20)
    assert policy.reach(STREAMS_SERIES, H, now) == T0 + timedelta(hours=1)
    assert policy.horizon(STREAMS_SERIES, H, now) == T0 + timedelta(hours=2)
    assert policy.reach(ACCOUNT_SERIES, Resolution.MONTH, now) == policy.horizon(
        ACCOUNT_SERIES, Resolution.MONTH, now
    )  # never purged: no margin to doubt


def test_a_zero_before_the_safe_line_is_doubted_and_one_with_traffic_is_not() -> None:
    chunk = (T0, T0 + timedelta(hours=10))
    at = T0 + timedelta(days=3)
    trusted = T0 + timedelta(hours=4)
    settlement = Settlement(POLICY, H, *chunk, at, trusted_from=trusted)
    held = {T0 + timedelta(hours=1), T0 + timedelta(hours=5)}
    hour = timedelta(hours=1)
    assert settlement.doubted(held) == [(T0, T0 + hour), (T0 + 2 * hour, trusted)]
    assert Settlement(POLICY, H, *chunk, at).doubted(set()) == []  # no line: all believed
    unbelieved = Settlement(POLICY, H, *chunk, at, settles=False, trusted_from=trusted)
    assert unbelieved.doubted(set()) == []  # nothing settles, nothing is passed
    early = T0 + timedelta(hours=3, minutes=30)  # only 00:00-02:00 are final: the rest waits
    assert Settlement(POLICY, H, *chunk, early, trusted_from=trusted).doubted(set()) == [
        (T0, T0 + 2 * hour)
    ]


def test_a_later_chunk_answered_first_never_skips_an_earlier_one() -> None:
    late = Settlement(
        POLICY, H, T0 + timedelta(hours=10), T0 + timedelta(hours=20), T0 + timedelta(days=3)
    )
    earlier_watermark = T0 + timedelta(hours=2)
    assert late.moves(earlier_watermark) == earlier_watermark
    assert late.moves(late.chunk_start) == late.target  # the chunk's own first bucket
    assert late.moves(T0 + timedelta(hours=12)) == T0 + timedelta(hours=20)
    assert late.moves(T0 + timedelta(hours=25)) == T0 + timedelta(hours=25)  # never backwards


@settings(max_examples=300, deadline=None)
@given(
    start_hour=st.integers(0, 200),
    length=st.integers(1, 100),
    read_minutes=st.integers(0, 400 * 60),
    settle=st.integers(0, 300),
)
def test_the_target_is_the_first_bucket_not_yet_final(
    start_hour: int, length: int, read_minutes: int, settle: int
) -> None:
    policy = Policy(settle=timedelta(minutes=settle))
    chunk_start = T0 + timedelta(hours=start_hour)
    chunk_stop = chunk_start + timedelta(hours=length)
    fetched = T0 + timedelta(minutes=read_minutes)
    settlement = Settlement(policy, H, chunk_start, chunk_stop, fetched)
    # Independent oracle: walk the hours, final when its end plus settle has passed.
    expected = chunk_stop
    for hour in range(length):
        bucket = chunk_start + timedelta(hours=hour)
        if not bucket + timedelta(hours=1, minutes=settle) <= fetched:
            expected = bucket
            break
    assert settlement.target == expected
    for hour in range(length):
        bucket = chunk_start + timedelta(hours=hour)
        assert settlement.final(bucket) == (bucket < expected)


@settings(max_examples=500, deadline=None)
@example(resolution=Resolution.HOUR, offset=1, edge=5, jitter=0, settle=3600)  # read at the end
@example(resolution=Resolution.DAY, offset=0, edge=5, jitter=-1, settle=60)  # a second before
@given(
    resolution=st.sampled_from(list(Resolution)),
    offset=st.integers(-2, 3),
    edge=st.integers(0, 60),
    jitter=st.one_of(st.integers(-2, 2), st.integers(-100 * 86400, 100 * 86400)),
    settle=st.integers(0, 3 * 86400),
)
def test_the_rule_by_bucket_and_by_boundary_agree_at_every_resolution(
    resolution: Resolution, offset: int, edge: int, jitter: int, settle: int
) -> None:
    # finality.is_final (per bucket) and finality.first_unfinal (the boundary the watermark
    # moves to) are one rule: a bucket is final exactly when it starts before the boundary.
    # Read times cluster within seconds of a bucket's end plus the settle delay, where an
    # off-by-one lives, or fall anywhere.
    delay = timedelta(seconds=settle)
    at = add_buckets(T0, resolution, edge) + delay + timedelta(seconds=jitter)
    start = add_buckets(floor(at - delay, resolution), resolution, -offset)
    assert finality.is_final(delay, resolution, start, at) == (
        start < finality.first_unfinal(delay, resolution, at)
    )


SCOPE = Scope("stream_usage", "a", H)


def _watermark(engine: Engine) -> datetime:
    with engine.connect() as conn:
        value: datetime = conn.execute(sa.select(sync_state.c.watermark)).scalar_one()
    return value


def _settled(rows: list[dict[str, Any]], settlement: Settlement) -> list[dict[str, Any]]:
    for row in rows:
        row["fetched_at"] = settlement.fetched_at
        row["is_final"] = settlement.final(row["period_start"])
    return rows


def test_the_store_moves_a_watermark_only_from_inside_the_chunk(engine: Engine) -> None:
    with engine.begin() as conn:
        state.start_scopes(conn=conn, watermarks={SCOPE: T0}, gaps=[], recorded_at=T0)
    late = Settlement(
        POLICY, H, T0 + timedelta(hours=10), T0 + timedelta(hours=20), T0 + timedelta(days=3)
    )
    rows = _settled([usage_row("a", h, bytes_out=h) for h in range(10, 20)], late)
    with engine.begin() as conn:
        state.store_response(
            conn=conn, dataset="stream_usage", scopes=[SCOPE], rows=rows, settlement=late
        )
    assert _watermark(engine) == T0  # hours 0-9 are not stored yet: nothing skips them
    early = Settlement(POLICY, H, T0, T0 + timedelta(hours=10), T0 + timedelta(days=3))
    rows = _settled([usage_row("a", h, bytes_out=h) for h in range(10)], early)
    with engine.begin() as conn:
        state.store_response(
            conn=conn, dataset="stream_usage", scopes=[SCOPE], rows=rows, settlement=early
        )
    assert _watermark(engine) == T0 + timedelta(hours=10)


def test_rows_and_their_watermark_commit_together(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        state.start_scopes(conn=conn, watermarks={SCOPE: T0}, gaps=[], recorded_at=T0)
    settlement = Settlement(POLICY, H, T0, T0 + timedelta(hours=10), T0 + timedelta(days=3))
    rows = _settled([usage_row("a", h, bytes_out=h) for h in range(10)], settlement)

    def refused(**_: Any) -> int:
        raise RuntimeError("the database refused the rows")

    monkeypatch.setattr(state, "upsert_rows", refused)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        state.store_response(
            conn=conn, dataset="stream_usage", scopes=[SCOPE], rows=rows, settlement=settlement
        )
    assert _watermark(engine) == T0


def test_partial_rows_in_bulk_never_replace_final_ones(engine: Engine) -> None:
    # Above the bulk threshold, PostgreSQL takes the COPY path: the guard must hold there too.
    final = [usage_row(f"s{i % 5}", i // 5, bytes_out=7) for i in range(300)]
    partial = [usage_row(f"s{i % 5}", i // 5, bytes_out=0, final=False) for i in range(300)]
    from archiver.store.upsert import upsert_rows

    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_usage, rows=final)
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_usage, rows=partial)
    with engine.connect() as conn:
        values = set(conn.execute(sa.select(stream_usage.c.bytes_out, stream_usage.c.is_final)))
    assert values == {(7, True)}


@pytest.mark.postgres
def test_naive_times_are_refused_on_postgresql_too(postgres_url: str) -> None:
    from archiver.store import db
    from archiver.store.upsert import upsert_rows

    engine = db.make_engine(postgres_url)
    row = usage_row("naive", 1, bytes_out=1)
    row["period_start"] = row["period_start"].replace(tzinfo=None)
    try:
        with pytest.raises(ValueError, match="naive datetime"), engine.begin() as conn:
            upsert_rows(conn=conn, table=stream_usage, rows=[row])
    finally:
        engine.dispose()


def test_two_bulk_writes_in_one_transaction_keep_the_second_values(engine: Engine) -> None:
    from archiver.store.upsert import upsert_rows

    first = [usage_row(f"s{i % 5}", i // 5, bytes_out=1, final=False) for i in range(300)]
    second = [usage_row(f"s{i % 5}", i // 5, bytes_out=2) for i in range(300)]
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_usage, rows=first)
        upsert_rows(conn=conn, table=stream_usage, rows=second)
    with engine.connect() as conn:
        values = set(conn.execute(sa.select(stream_usage.c.bytes_out, stream_usage.c.is_final)))
    assert values == {(2, True)}
