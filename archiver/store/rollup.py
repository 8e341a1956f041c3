"""Daily and monthly rollups, recomputed for the days and months a write touched."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.datasets import ENDPOINTS, Keys
from archiver.store.timecolumn import SQLITE_TIME_FORMAT
from archiver.timeutil import Resolution, floor, next_start

# Each refresh recomputes its keys from their source rows (at most 24 hours or 31 days a key,
# read by primary key) instead of adding deltas: an upsert that keeps a final row, or re-reads
# the same hour, can then never make a rollup drift from the rows it sums. Archived rows are
# never deleted, so a key once summed always has rows and an upsert of the sums is enough.
# One statement per rollup and write: the touched keys arrive as one parameter (a JSON array on
# SQLite, arrays on PostgreSQL), so a write of a thousand streams costs no thousand round trips.
KEYS = {
    "sqlite": "(SELECT json_extract(value, '$[0]') AS stream_name, "
    "json_extract(value, '$[1]') AS start, json_extract(value, '$[2]') AS stop "
    "FROM json_each(:keys)) AS k",
    "postgresql": "unnest(CAST(:streams AS varchar[]), CAST(:starts AS timestamptz[]), "
    "CAST(:stops AS timestamptz[])) AS k(stream_name, start, stop)",
}
# SQLite's planner may start from the big table's (resolution, period_start) index and scan it
# all; CROSS JOIN makes it start from the keys, as PostgreSQL does of itself.
JOIN = {"sqlite": "CROSS JOIN", "postgresql": "JOIN"}
ALL_FINAL = {"sqlite": "MIN(u.is_final)", "postgresql": "bool_and(u.is_final)"}

_REFRESH = {
    "stream_daily_hours": (
        "INSERT INTO stream_daily_hours (stream_name, day, bytes_in, bytes_out, is_final, hours, "
        "superseded) "
        "SELECT k.stream_name, k.start, SUM(u.bytes_in), SUM(u.bytes_out), {all_final}, COUNT(*), "
        "EXISTS (SELECT 1 FROM stream_usage d WHERE d.stream_name = k.stream_name "
        "AND d.resolution = 'Day' AND d.period_start = k.start) "
        "FROM {keys} {join} stream_usage u ON u.stream_name = k.stream_name "
        "AND u.resolution = 'Hour' AND u.period_start >= k.start AND u.period_start < k.stop "
        "WHERE true GROUP BY k.stream_name, k.start "
        "ON CONFLICT (stream_name, day) DO UPDATE SET bytes_in = excluded.bytes_in, "
        "bytes_out = excluded.bytes_out, is_final = excluded.is_final, hours = excluded.hours, "
        "superseded = excluded.superseded"
    ),
    "account_daily_hours": (
        "INSERT INTO account_daily_hours (day, bytes_in, bytes_out, is_final, hours, superseded) "
        "SELECT k.start, SUM(u.bytes_in), SUM(u.bytes_out), {all_final}, COUNT(*), "
        "EXISTS (SELECT 1 FROM account_usage d WHERE d.resolution = 'Day' "
        "AND d.period_start = k.start) "
        "FROM {keys} {join} account_usage u ON u.resolution = 'Hour' "
        "AND u.period_start >= k.start AND u.period_start < k.stop "
        "WHERE true GROUP BY k.start "
        "ON CONFLICT (day) DO UPDATE SET bytes_in = excluded.bytes_in, "
        "bytes_out = excluded.bytes_out, is_final = excluded.is_final, hours = excluded.hours, "
        "superseded = excluded.superseded"
    ),
    "country_daily_hours": (
        "INSERT INTO country_daily_hours (day, country, publishes, views, publish_seconds, "
        "view_seconds, bytes_in, bytes_out, superseded) "
        "SELECT k.start, u.country, SUM(u.publishes), SUM(u.views), SUM(u.publish_seconds), "
        "SUM(u.view_seconds), SUM(u.bytes_in), SUM(u.bytes_out), "
        "EXISTS (SELECT 1 FROM account_geo_usage d WHERE d.resolution = 'Day' "
        "AND d.period_start = k.start) "
        "FROM {keys} {join} account_geo_usage u ON u.resolution = 'Hour' "
        "AND u.period_start >= k.start AND u.period_start < k.stop "
        "WHERE true GROUP BY k.start, u.country "
        "ON CONFLICT (day, country) DO UPDATE SET publishes = excluded.publishes, "
        "views = excluded.views, publish_seconds = excluded.publish_seconds, "
        "view_seconds = excluded.view_seconds, bytes_in = excluded.bytes_in, "
        "bytes_out = excluded.bytes_out, superseded = excluded.superseded"
    ),
    # A day row archived: the hours of its day stop counting in the views (archived rows are
    # never deleted, so a superseded day stays superseded).
    "supersede_stream": (
        "UPDATE stream_daily_hours SET superseded = {true} "
        "WHERE (stream_name, day) IN (SELECT k.stream_name, k.start FROM {keys})"
    ),
    "supersede_account": (
        "UPDATE account_daily_hours SET superseded = {true} "
        "WHERE day IN (SELECT k.start FROM {keys})"
    ),
    "supersede_country": (
        "UPDATE country_daily_hours SET superseded = {true} "
        "WHERE day IN (SELECT k.start FROM {keys})"
    ),
    # The daily figures a month sums are the vendor's day rows, else the hours' rollup (the
    # rule of stream_daily_usage); it must run after the daily refresh of the same write. Each
    # branch joins the keys itself: a join with the whole view would materialise all of it.
    "stream_monthly_totals": (
        "INSERT INTO stream_monthly_totals (stream_name, month, bytes_in, bytes_out, "
        "days_with_traffic) "
        "SELECT stream_name, start, SUM(bytes_in), SUM(bytes_out), COUNT(*) FROM ("
        "SELECT k.stream_name, k.start, d.bytes_in, d.bytes_out "
        "FROM {keys} {join} stream_usage d ON d.stream_name = k.stream_name "
        "AND d.resolution = 'Day' AND d.period_start >= k.start AND d.period_start < k.stop "
        "UNION ALL SELECT k.stream_name, k.start, h.bytes_in, h.bytes_out "
        "FROM {keys} {join} stream_daily_hours h ON h.stream_name = k.stream_name "
        "AND h.day >= k.start AND h.day < k.stop "
        "WHERE NOT h.superseded"
        ") AS v WHERE true GROUP BY stream_name, start "
        "ON CONFLICT (stream_name, month) DO UPDATE SET bytes_in = excluded.bytes_in, "
        "bytes_out = excluded.bytes_out, days_with_traffic = excluded.days_with_traffic"
    ),
    # A month's countries per stream: the vendor's day rows summed, as a query of the table's
    # Day rows would (the vendor keeps them a year, hours a week; today's row is partial and
    # kept up to date like the rest). Hour rows refresh nothing here.
    "stream_country_monthly_totals": (
        "INSERT INTO stream_country_monthly_totals (stream_name, month, country, publishes, "
        "views, publish_seconds, view_seconds, bytes_in, bytes_out, days_with_traffic) "
        "SELECT k.stream_name, k.start, g.country, SUM(g.publishes), SUM(g.views), "
        "SUM(g.publish_seconds), SUM(g.view_seconds), SUM(g.bytes_in), SUM(g.bytes_out), "
        "COUNT(*) "
        "FROM {keys} {join} stream_geo_usage g ON g.stream_name = k.stream_name "
        "AND g.resolution = 'Day' AND g.period_start >= k.start AND g.period_start < k.stop "
        "WHERE true GROUP BY k.stream_name, k.start, g.country "
        "ON CONFLICT (stream_name, month, country) DO UPDATE SET "
        "publishes = excluded.publishes, views = excluded.views, "
        "publish_seconds = excluded.publish_seconds, view_seconds = excluded.view_seconds, "
        "bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, "
        "days_with_traffic = excluded.days_with_traffic"
    ),
    # Every stream's rows of a bucket, summed: the key's "stream" is the resolution (its stop
    # is unused). Read by the (resolution, period_start) index.
    "stream_period_totals": (
        "INSERT INTO stream_period_totals (resolution, period_start, bytes_in, bytes_out, "
        "streams, is_final) "
        "SELECT k.stream_name, k.start, SUM(u.bytes_in), SUM(u.bytes_out), COUNT(*), {all_final} "
        "FROM {keys} {join} stream_usage u ON u.resolution = k.stream_name "
        "AND u.period_start = k.start "
        "WHERE true GROUP BY k.stream_name, k.start "
        "ON CONFLICT (resolution, period_start) DO UPDATE SET bytes_in = excluded.bytes_in, "
        "bytes_out = excluded.bytes_out, streams = excluded.streams, is_final = excluded.is_final"
    ),
}


@cache
def _statement(rollup: str, dialect: str) -> sa.TextClause:
    return sa.text(
        _REFRESH[rollup].format(
            keys=KEYS[dialect],
            join=JOIN[dialect],
            all_final=ALL_FINAL[dialect],
            true="1" if dialect == "sqlite" else "true",
        )
    )


def key_params(
    dialect: str, keys: Iterable[tuple[str, datetime]], unit: Resolution
) -> dict[str, Any]:
    """The touched keys (stream, start of its unit) as the one parameter `KEYS` reads:
    a JSON array of [stream, start, stop] texts on SQLite, three arrays on PostgreSQL."""
    ordered = sorted(keys)
    if dialect == "sqlite":
        texts = [
            [
                stream,
                start.strftime(SQLITE_TIME_FORMAT),
                next_start(start, unit).strftime(SQLITE_TIME_FORMAT),
            ]
            for stream, start in ordered
        ]
        return {"keys": json.dumps(texts)}
    return {
        "streams": [stream for stream, _ in ordered],
        "starts": [start for _, start in ordered],
        "stops": [next_start(start, unit) for _, start in ordered],
    }


def _refresh(
    conn: Connection, rollup: str, keys: set[tuple[str, datetime]], unit: Resolution
) -> None:
    if not keys:
        return
    dialect = conn.dialect.name
    conn.execute(_statement(rollup, dialect), key_params(dialect, keys, unit))


# Any constant shared by every writer of the archive; 0x617263 is "arc".
_ROLLUP_LOCK = 0x617263


def serialise_writers(conn: Connection, table: str) -> None:
    """On PostgreSQL, wait for any other transaction writing rows that feed the rollups.

    A refresh sums what its statement can see; under READ COMMITTED a concurrent writer's
    uncommitted hours are invisible, and its later upsert of the same rollup row would drop
    them. Taken before the rows are written, so every writer locks in the same order.
    """
    if conn.dialect.name == "postgresql" and table in _FEEDS:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ROLLUP_LOCK})")


# The tables whose writes refresh a rollup: every writer of one takes the lock.
_FEEDS = {e.table: e.rollups for e in ENDPOINTS if e.rollups}


def feeds_rollups(table: str) -> bool:
    """Whether writes to `table` refresh a rollup."""
    return table in _FEEDS


def refresh_rollups(conn: Connection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bring the rollups fed by `table` up to date with `rows`, just written in this transaction
    (the statements its declaration names, in their order)."""
    rollups = _FEEDS.get(table)
    if not rollups:
        return
    # A write holds many rows per bucket start: floor each distinct start once.
    days: dict[datetime, datetime] = {}
    months: dict[datetime, datetime] = {}

    def day_of(start: datetime) -> datetime:
        found = days.get(start)
        if found is None:
            found = days[start] = floor(start, Resolution.DAY)
        return found

    def month_of(start: datetime) -> datetime:
        found = months.get(start)
        if found is None:
            found = months[start] = floor(start, Resolution.MONTH)
        return found

    keys: dict[Keys, set[tuple[str, datetime]]] = {k: set() for k in Keys}
    # Rollups of day rows only (stream_geo_usage's) owe nothing for the hours written.
    hours_feed = bool({r.keys for r in rollups} - {Keys.DAY_ROWS, Keys.DAY_MONTHS})
    for row in rows:
        resolution = row["resolution"]
        stream = row.get("stream_name", "")
        if resolution == "Hour" and hours_feed:
            keys[Keys.HOUR_DAYS].add((stream, day_of(row["period_start"])))
        elif resolution == "Day":
            keys[Keys.DAY_ROWS].add((stream, row["period_start"]))
            keys[Keys.DAY_MONTHS].add((stream, month_of(row["period_start"])))
        else:
            continue
        keys[Keys.PERIODS].add((resolution, row["period_start"]))
        keys[Keys.MONTHS].add((stream, month_of(row["period_start"])))
    # The declarations list day rows first: an hour refresh of the same write then sees them.
    for rollup in rollups:
        monthly = rollup.keys in (Keys.MONTHS, Keys.DAY_MONTHS)
        unit = Resolution.MONTH if monthly else Resolution.DAY
        _refresh(conn, rollup.statement, keys[rollup.keys], unit)
