"""Times compare right against the literals people type, and the rollups equal their rows."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from archiver.store.tables import account_geo_usage, account_usage, stream_usage
from archiver.store.upsert import upsert_rows
from archiver.timeutil import format_iso

FETCHED = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
# 2026-11-24T23:00Z .. 2026-11-26T01:00Z: a day with one hour either side.
FIRST = datetime(2026, 11, 24, 23, tzinfo=UTC)
HOURS = 27


def usage(
    stream: str | None, resolution: str, start: datetime, out: int, final: bool = True
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "resolution": resolution,
        "period_start": start,
        "bytes_in": out // 3,
        "bytes_out": out,
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
    if stream is not None:
        row["stream_name"] = stream
    return row


def geo(start: datetime, resolution: str, country: str, views: int) -> dict[str, Any]:
    return {
        "resolution": resolution,
        "period_start": start,
        "country": country,
        "publishes": 1,
        "views": views,
        "publish_seconds": 60,
        "view_seconds": views * 30,
        "bytes_in": views * 7,
        "bytes_out": views * 11,
        "fetched_at": FETCHED,
        "is_final": True,
    }


def count(conn: Connection, where: str, table: str = "stream_usage") -> int:
    return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE {where}")).scalar_one())


@pytest.fixture
def hours(engine: Engine) -> Engine:
    rows = [usage("a", "Hour", FIRST + timedelta(hours=h), 1000 + h) for h in range(HOURS)]
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_usage, rows=rows)
    return engine


# (where clause, rows of the 27 it must select): every form the README, the CLI and people use.
LITERALS = [
    # RFC 3339 UTC, as every CLI output prints times: every comparison operator.
    ("period_start >= '2026-11-25T00:00:00Z' AND period_start < '2026-11-26T00:00:00Z'", 24),
    ("period_start = '2026-11-25T00:00:00Z'", 1),
    ("period_start <= '2026-11-25T00:00:00Z'", 2),
    ("period_start > '2026-11-25T23:00:00Z'", 2),
    ("period_start BETWEEN '2026-11-25T00:00:00Z' AND '2026-11-25T23:00:00Z'", 24),
    # Date-only literals in half-open ranges, as README's examples and the report's days.
    ("period_start >= '2026-11-25' AND period_start < '2026-11-26'", 24),
    ("period_start >= '2026-11-26'", 2),
    ("period_start < '2026-11-25'", 1),
    # An explicit UTC offset in half-open ranges.
    (
        "period_start >= '2026-11-25T00:00:00+00:00' "
        "AND period_start < '2026-11-26T00:00:00+00:00'",
        24,
    ),
]


@pytest.mark.parametrize(("where", "expected"), LITERALS, ids=[w for w, _ in LITERALS])
def test_time_literals_select_the_right_rows(hours: Engine, where: str, expected: int) -> None:
    with hours.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET TIME ZONE 'UTC'"))  # as README tells psql users
        assert count(conn, where) == expected


def test_views_take_the_same_literals(hours: Engine) -> None:
    with hours.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET TIME ZONE 'UTC'"))
        assert count(conn, "day = '2026-11-25T00:00:00Z'", "stream_daily_usage") == 1
        assert count(conn, "day >= '2026-11-25' AND day < '2026-11-26'", "stream_daily_usage") == 1
        assert (
            count(conn, "month >= '2026-11-01' AND month < '2026-12-01'", "stream_monthly_usage")
            == 1
        )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_stores_what_the_cli_prints(hours: Engine) -> None:
    with hours.connect() as conn:
        stored = conn.execute(sa.text("SELECT period_start, fetched_at FROM stream_usage")).all()
        day = conn.execute(sa.text("SELECT MIN(day) FROM stream_daily_usage")).scalar_one()
    assert stored[0] == (format_iso(FIRST), format_iso(FETCHED))
    assert day == "2026-11-24T00:00:00Z"


def _expected_daily(
    rows: list[dict[str, Any]], key: str | None
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The views' rule, independently: the vendor's day row, else the archived hours summed."""
    days = {
        (r.get(key) if key else None, r["period_start"]) for r in rows if r["resolution"] == "Day"
    }
    result: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    sums: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, True])
    for r in rows:
        k = (r.get(key) if key else None, r["period_start"])
        if r["resolution"] == "Day":
            result[k] = (r["bytes_in"], r["bytes_out"], r["is_final"], "Day")
        elif r["resolution"] == "Hour":
            day = r["period_start"].replace(hour=0)
            if (k[0], day) not in days:
                s = sums[(k[0], day)]
                s[0] += r["bytes_in"]
                s[1] += r["bytes_out"]
                s[2] = s[2] and r["is_final"]
    for k, (bin_, bout, final) in sums.items():
        result[k] = (bin_, bout, final, "Hour")
    return result


def _stored(conn: Connection, table: sa.Table) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sa.select(table))]


def _time(value: Any) -> datetime:
    # SQLite views return the stored text; PostgreSQL a timestamptz.
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def _view(conn: Connection, sql: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = conn.execute(sa.text(sql)).all()
    return {(r[0], _time(r[1])): (int(r[2]), int(r[3]), bool(r[4]), r[5]) for r in rows}


def test_rollups_equal_their_rows_after_random_writes(engine: Engine) -> None:
    rng = random.Random(17)
    start = datetime(2026, 10, 30, tzinfo=UTC)
    with engine.begin() as conn:
        for _ in range(12):
            # Batches mixing hours and days, partial and final, rewrites of the same buckets.
            hour_rows, day_rows, account_rows, geo_rows = [], [], [], []
            for stream in ("a", "b", "c"):
                for h in rng.sample(range(24 * 5), 20):
                    at = start + timedelta(hours=h)
                    hour_rows.append(
                        usage(stream, "Hour", at, rng.randrange(10**12), rng.random() < 0.8)
                    )
                if rng.random() < 0.5:
                    day = start + timedelta(days=rng.randrange(5))
                    day_rows.append(usage(stream, "Day", day, rng.randrange(10**13)))
            for h in rng.sample(range(24 * 5), 30):
                at = start + timedelta(hours=h)
                account_rows.append(
                    usage(None, "Hour", at, rng.randrange(10**12), rng.random() < 0.8)
                )
                geo_rows.append(geo(at, "Hour", rng.choice(["US", "FR"]), rng.randrange(100)))
            if rng.random() < 0.4:
                day = start + timedelta(days=rng.randrange(5))
                account_rows.append(usage(None, "Day", day, rng.randrange(10**13)))
                geo_rows.append(geo(day, "Day", "US", rng.randrange(1000)))
            upsert_rows(conn=conn, table=stream_usage, rows=hour_rows + day_rows)
            upsert_rows(conn=conn, table=account_usage, rows=account_rows)
            upsert_rows(conn=conn, table=account_geo_usage, rows=geo_rows)
        # The vendor's day rows arriving alone, after the hours of their day were summed.
        last = start + timedelta(days=6)
        last_hours = [last + timedelta(hours=h) for h in (1, 2)]
        upsert_rows(
            conn=conn, table=stream_usage, rows=[usage("a", "Hour", t, 5) for t in last_hours]
        )
        upsert_rows(
            conn=conn, table=account_usage, rows=[usage(None, "Hour", t, 5) for t in last_hours]
        )
        upsert_rows(
            conn=conn, table=account_geo_usage, rows=[geo(t, "Hour", "US", 5) for t in last_hours]
        )
        upsert_rows(conn=conn, table=stream_usage, rows=[usage("a", "Day", last, 10**14)])
        upsert_rows(conn=conn, table=account_usage, rows=[usage(None, "Day", last, 10**14)])
        upsert_rows(conn=conn, table=account_geo_usage, rows=[geo(last, "Day", "FR", 10**6)])
    with engine.connect() as conn:
        streams = _stored(conn, stream_usage)
        expected = _expected_daily(streams, "stream_name")
        got = _view(
            conn,
            "SELECT stream_name, day, bytes_in, bytes_out, is_final, source "
            "FROM stream_daily_usage",
        )
        assert got == expected
        account = _expected_daily(_stored(conn, account_usage), None)
        got = _view(
            conn, "SELECT NULL, day, bytes_in, bytes_out, is_final, source FROM account_daily_usage"
        )
        assert got == account
        monthly: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
        for (stream, day), (bin_, bout, _final, _source) in expected.items():
            m = monthly[(stream, format_iso(day.replace(day=1)))]
            m[0] += bin_
            m[1] += bout
            m[2] += 1
        got_months = {
            (r[0], r[1] if isinstance(r[1], str) else format_iso(r[1])): [int(v) for v in r[2:]]
            for r in conn.execute(
                sa.text(
                    "SELECT stream_name, month, bytes_in, bytes_out, days_with_traffic "
                    "FROM stream_monthly_usage"
                )
            )
        }
        assert got_months == dict(monthly)
        assert len(got_months) == 6  # three streams over October and November
        geo_rows = _stored(conn, account_geo_usage)
        day_keys = {r["period_start"] for r in geo_rows if r["resolution"] == "Day"}
        countries: dict[tuple[Any, ...], int] = defaultdict(int)
        for r in geo_rows:
            if r["resolution"] == "Day":
                countries[(format_iso(r["period_start"]), r["country"])] += r["views"]
            elif r["period_start"].replace(hour=0) not in day_keys:
                countries[(format_iso(r["period_start"].replace(hour=0)), r["country"])] += r[
                    "views"
                ]
        got_countries = {
            (r[0] if isinstance(r[0], str) else format_iso(r[0]), r[1]): int(r[2])
            for r in conn.execute(sa.text("SELECT day, country, views FROM country_daily_usage"))
        }
        assert got_countries == dict(countries)


def test_account_and_country_days_sum_their_own_hours_until_a_day_row_comes(
    engine: Engine,
) -> None:
    # Account hours on days 0 and 1 and country hours on days 2 and 3, never on the same day,
    # so that each rollup can only be right if its own table's writes refresh it; a Day row
    # arrives for day 1 (account) and day 3 (countries) only.
    d0 = datetime(2026, 11, 2, tzinfo=UTC)
    day = [d0 + timedelta(days=i) for i in range(4)]
    with engine.begin() as conn:
        for i in (0, 1):
            hours = [usage(None, "Hour", day[i] + timedelta(hours=h), 100 * i + h) for h in (3, 9)]
            upsert_rows(conn=conn, table=account_usage, rows=hours)
        for i in (2, 3):
            rows = [geo(day[i] + timedelta(hours=h), "Hour", c, h) for h in (1, 5) for c in "AB"]
            upsert_rows(conn=conn, table=account_geo_usage, rows=rows)
        upsert_rows(conn=conn, table=account_usage, rows=[usage(None, "Day", day[1], 7777)])
        upsert_rows(conn=conn, table=account_geo_usage, rows=[geo(day[3], "Day", "A", 999)])
    with engine.connect() as conn:
        account = _view(
            conn, "SELECT NULL, day, bytes_in, bytes_out, is_final, source FROM account_daily_usage"
        )
        countries = {
            (_time(r[0]), r[1]): int(r[2])
            for r in conn.execute(sa.text("SELECT day, country, views FROM country_daily_usage"))
        }
    assert account == {
        (None, day[0]): (3 // 3 + 9 // 3, 3 + 9, True, "Hour"),
        (None, day[1]): (7777 // 3, 7777, True, "Day"),
    }
    assert countries == {(day[2], "A"): 6, (day[2], "B"): 6, (day[3], "A"): 999}


# SQLite runs one writer at a time by itself; PostgreSQL needs the rollup lock.
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_writers_of_one_day_keep_its_rollup_whole(engine: Engine) -> None:
    """Two transactions writing hours of one day: the later one must see the earlier's."""
    import threading

    written = threading.Event()

    def first() -> None:
        with engine.begin() as conn:
            upsert_rows(conn=conn, table=stream_usage, rows=[usage("a", "Hour", FIRST, 100)])
            written.set()
            threading.Event().wait(0.5)  # hold the transaction open while the second writes

    thread = threading.Thread(target=first)
    thread.start()
    assert written.wait(10)
    with engine.begin() as conn:
        later = FIRST - timedelta(hours=1)  # the same day (Nov 24), another hour
        upsert_rows(conn=conn, table=stream_usage, rows=[usage("a", "Hour", later, 11)])
    thread.join()
    with engine.connect() as conn:
        total = conn.execute(
            sa.text("SELECT bytes_out, source FROM stream_daily_usage WHERE stream_name = 'a'")
        ).all()
    assert total == [(111, "Hour")]
