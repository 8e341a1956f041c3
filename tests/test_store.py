"""The bulk upsert path on real SQLite and real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.store.tables import account_usage, stream_geo_usage, stream_usage
from archiver.store.upsert import upsert_rows

T0 = datetime(2026, 11, 20, tzinfo=UTC)
FETCHED = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def usage_row(stream: str, hour: int, *, bytes_out: int, final: bool = True) -> dict[str, Any]:
    return {
        "stream_name": stream,
        "resolution": "Hour",
        "period_start": T0 + timedelta(hours=hour),
        "bytes_in": hour * 10,
        "bytes_out": bytes_out,
        "standard_bytes_in": None,
        "standard_bytes_out": None,
        "restream_bytes_in": None,
        "restream_bytes_out": None,
        "restream_seconds": None,
        "cascade_bytes_in": None,
        "cascade_bytes_out": None,
        "fetched_at": FETCHED,
        "is_final": final,
    }


def all_rows(engine: Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key))]


def test_same_batch_twice_leaves_the_same_rows(engine: Engine) -> None:
    batch = [usage_row("a", h, bytes_out=h * 7) for h in range(48)]
    with engine.begin() as conn:
        assert upsert_rows(conn=conn, table=stream_usage, rows=batch) == 48
    first = all_rows(engine, stream_usage)
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_usage, rows=batch)
    assert all_rows(engine, stream_usage) == first
    assert len(first) == 48
    assert first[5][1:5] == ("Hour", T0 + timedelta(hours=5), 50, 35)


def test_changed_value_replaces_the_old_one(engine: Engine) -> None:
    with engine.begin() as conn:
        upsert_rows(
            conn=conn, table=stream_usage, rows=[usage_row("a", 1, bytes_out=5, final=False)]
        )
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_usage, rows=[usage_row("a", 1, bytes_out=9)])
    rows = all_rows(engine, stream_usage)
    assert [(r[4], r[-1]) for r in rows] == [(9, True)]


def test_a_partial_read_never_replaces_a_final_value(engine: Engine) -> None:
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_usage, rows=[usage_row("a", 1, bytes_out=9)])
        upsert_rows(
            conn=conn, table=stream_usage, rows=[usage_row("a", 1, bytes_out=0, final=False)]
        )
    assert [(r[4], r[-1]) for r in all_rows(engine, stream_usage)] == [(9, True)]


def test_ten_thousand_rows_in_one_call(engine: Engine) -> None:
    batch = [usage_row(f"s{i % 50}", i // 50, bytes_out=i) for i in range(10_000)]
    with engine.begin() as conn:
        assert upsert_rows(conn=conn, table=stream_usage, rows=batch) == 10_000
    with engine.connect() as conn:
        count, total = conn.execute(
            sa.select(sa.func.count(), sa.func.sum(stream_usage.c.bytes_out))
        ).one()
    assert (count, total) == (10_000, sum(range(10_000)))


def test_rows_roll_back_with_their_transaction(engine: Engine) -> None:
    class Boom(Exception):
        pass

    try:
        with engine.begin() as conn:
            upsert_rows(conn=conn, table=stream_usage, rows=[usage_row("a", 1, bytes_out=1)])
            raise Boom
    except Boom:
        pass
    assert all_rows(engine, stream_usage) == []


def test_values_beyond_32_bits_and_aware_times_round_trip(engine: Engine) -> None:
    big = 9_000_000_000_000_000_000
    geo = {
        "stream_name": "360",
        "resolution": "Day",
        "period_start": T0,
        "country": "US",
        "publishes": 1,
        "views": 2,
        "publish_seconds": 3,
        "view_seconds": 4,
        "bytes_in": big,
        "bytes_out": big - 1,
        "fetched_at": FETCHED,
        "is_final": True,
    }
    account = {k: v for k, v in usage_row("x", 0, bytes_out=big).items() if k != "stream_name"}
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_geo_usage, rows=[geo])
        upsert_rows(conn=conn, table=account_usage, rows=[account])
    (row,) = all_rows(engine, stream_geo_usage)
    assert row[0] == "360"
    assert row[2] == T0
    assert row[2].tzinfo is not None
    assert row[8:10] == (big, big - 1)
    assert all_rows(engine, account_usage)[0][3] == big
