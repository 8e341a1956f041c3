"""The viewer statistics' views and upsert, on both databases, against hand-computed peaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.datasets import ACCOUNT_VIEWER_STATS, STREAM_VIEWER_STATS
from archiver.reading.export import _as_text
from archiver.store.db import transaction
from archiver.store.query_rows import save_rows
from archiver.store.viewer_stats import move_viewer_watermarks, viewer_watermarks

DAY = datetime(2026, 11, 20, tzinfo=UTC)
FETCHED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def at(hour: int, minute: int, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour, minutes=minute)


def stream_row(name: str, start: datetime, active: int, started: int, **extra: Any) -> Any:
    row = {
        "stream_name": name,
        "period_start": start,
        "active_viewers": active,
        "views_started": started,
        "views_ended": 1,
        "fetched_at": FETCHED,
        "is_final": True,
    }
    return {**row, **extra}


STREAM_ROWS = [
    stream_row("cam", at(10, 0), 4, 4),
    stream_row("cam", at(10, 5), 9, 6),
    stream_row("cam", at(10, 55), 2, 0),
    stream_row("cam", at(11, 0), 7, 3, is_final=False),
    stream_row("cam", at(23, 55), 1, 1),
    stream_row("cam", at(0, 0, day=1), 5, 5),
    stream_row("b", at(10, 0), 30, 31),
]


def view(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(_as_text(v) if isinstance(v, datetime | str) else v for v in r)
            for r in conn.execute(sa.text(sql))
        ]


def test_stream_views_peak_and_sum_by_hour_and_by_day(engine: Engine) -> None:
    with transaction(engine) as conn:
        save_rows(conn, STREAM_VIEWER_STATS, STREAM_ROWS)
    hourly = view(
        engine,
        "SELECT stream_name, hour, peak_viewers, views_started, views_ended, periods, is_final "
        "FROM stream_hourly_viewers ORDER BY stream_name, hour",
    )
    assert [(*r[:6], bool(r[6])) for r in hourly] == [
        ("b", "2026-11-20T10:00:00Z", 30, 31, 1, 1, True),
        ("cam", "2026-11-20T10:00:00Z", 9, 10, 3, 3, True),
        ("cam", "2026-11-20T11:00:00Z", 7, 3, 1, 1, False),
        ("cam", "2026-11-20T23:00:00Z", 1, 1, 1, 1, True),
        ("cam", "2026-11-21T00:00:00Z", 5, 5, 1, 1, True),
    ]
    daily = view(
        engine,
        "SELECT stream_name, day, peak_viewers, views_started, periods, is_final "
        "FROM stream_daily_viewers ORDER BY stream_name, day",
    )
    assert [(*r[:5], bool(r[5])) for r in daily] == [
        ("b", "2026-11-20T00:00:00Z", 30, 31, 1, True),
        ("cam", "2026-11-20T00:00:00Z", 9, 14, 5, False),
        ("cam", "2026-11-21T00:00:00Z", 5, 5, 1, True),
    ]


def test_account_views_peak_viewers_and_streams(engine: Engine) -> None:
    rows = [
        {**{k: v for k, v in r.items() if k != "stream_name"}, "streams": s}
        for r, s in zip(
            [r for r in STREAM_ROWS if r["stream_name"] == "cam"], [1, 3, 2, 2, 1, 4], strict=True
        )
    ]
    with transaction(engine) as conn:
        save_rows(conn, ACCOUNT_VIEWER_STATS, rows)
    hourly = view(
        engine,
        "SELECT hour, peak_viewers, views_started, peak_streams, periods "
        "FROM account_hourly_viewers ORDER BY hour",
    )
    assert hourly == [
        ("2026-11-20T10:00:00Z", 9, 10, 3, 3),
        ("2026-11-20T11:00:00Z", 7, 3, 2, 1),
        ("2026-11-20T23:00:00Z", 1, 1, 1, 1),
        ("2026-11-21T00:00:00Z", 5, 5, 4, 1),
    ]
    daily = view(
        engine,
        "SELECT day, peak_viewers, views_started, peak_streams, is_final "
        "FROM account_daily_viewers ORDER BY day",
    )
    assert [(*r[:4], bool(r[4])) for r in daily] == [
        ("2026-11-20T00:00:00Z", 9, 14, 3, False),
        ("2026-11-21T00:00:00Z", 5, 5, 4, True),
    ]
    # Counts are integers on both databases (a PostgreSQL SUM of BIGINT is NUMERIC: a Decimal
    # that JSON export cannot write).
    assert {type(v) for r in daily for v in r[1:4]} == {int}


def test_a_final_row_is_never_replaced_by_a_non_final_one(engine: Engine) -> None:
    first = stream_row("cam", at(10, 0), 4, 4, is_final=False)
    with transaction(engine) as conn:
        stats = STREAM_VIEWER_STATS
        save_rows(conn, stats, [first])
        save_rows(conn, stats, [{**first, "active_viewers": 6}])  # not final: replaced
        save_rows(conn, stats, [{**first, "active_viewers": 8, "is_final": True}])
        save_rows(conn, stats, [{**first, "active_viewers": 0}])  # kept: it is final
    assert view(engine, "SELECT active_viewers, is_final FROM stream_viewer_stats") in (
        [(8, True)],
        [(8, 1)],
    )


def test_watermarks_only_move_forward(engine: Engine) -> None:
    with transaction(engine) as conn:
        move_viewer_watermarks(conn, STREAM_VIEWER_STATS.dataset, ["a", "b"], at(10, 0), FETCHED)
        move_viewer_watermarks(conn, STREAM_VIEWER_STATS.dataset, ["a"], at(9, 0), FETCHED)
        move_viewer_watermarks(conn, STREAM_VIEWER_STATS.dataset, ["b"], at(11, 0), FETCHED)
        marks = viewer_watermarks(conn, STREAM_VIEWER_STATS.dataset)
        assert viewer_watermarks(conn, ACCOUNT_VIEWER_STATS.dataset) == {}
    assert marks == {"a": at(10, 0), "b": at(11, 0)}


def test_the_rollups_follow_a_row_overwritten_lower(engine: Engine) -> None:
    """A peak is recomputed from the rows, never kept from an earlier, higher read."""
    high = stream_row("cam", at(10, 5), 9, 6, is_final=False)
    account = {k: v for k, v in high.items() if k != "stream_name"} | {"streams": 5}
    with transaction(engine) as conn:
        save_rows(conn, STREAM_VIEWER_STATS, [STREAM_ROWS[0], high])
        save_rows(conn, ACCOUNT_VIEWER_STATS, [account])
    with transaction(engine) as conn:
        save_rows(conn, STREAM_VIEWER_STATS, [{**high, "active_viewers": 3, "is_final": True}])
        save_rows(conn, ACCOUNT_VIEWER_STATS, [{**account, "active_viewers": 2, "streams": 1}])
    daily = view(
        engine, "SELECT peak_viewers, views_started, periods, is_final FROM stream_daily_viewers"
    )
    assert [(*r[:3], bool(r[3])) for r in daily] == [(4, 10, 2, True)]
    for name in ("account_hourly_viewers", "account_daily_viewers"):
        found = view(engine, f"SELECT peak_viewers, peak_streams, periods FROM {name}")
        assert found == [(2, 1, 1)], name
