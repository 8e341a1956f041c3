"""Daily and monthly rollups, recomputed for the days and months a write touched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.store.tables import UtcDateTime
from archiver.timeutil import Resolution, floor, next_start

# Each refresh recomputes a key from its source rows (at most 24 hours or 31 days, read by
# primary key) instead of adding deltas: an upsert that keeps a final row, or re-reads the same
# hour, can then never make a rollup drift from the rows it sums.
_REFRESH: dict[str, tuple[str, str]] = {
    "stream_daily_hours": (
        "DELETE FROM stream_daily_hours WHERE stream_name = :stream AND day = :start",
        "INSERT INTO stream_daily_hours (stream_name, day, bytes_in, bytes_out, is_final, hours) "
        "SELECT stream_name, :start, SUM(bytes_in), SUM(bytes_out), {all_final}, COUNT(*) "
        "FROM stream_usage WHERE stream_name = :stream AND resolution = 'Hour' "
        "AND period_start >= :start AND period_start < :stop GROUP BY stream_name",
    ),
    "account_daily_hours": (
        "DELETE FROM account_daily_hours WHERE day = :start",
        "INSERT INTO account_daily_hours (day, bytes_in, bytes_out, is_final, hours) "
        "SELECT :start, SUM(bytes_in), SUM(bytes_out), {all_final}, COUNT(*) "
        "FROM account_usage WHERE resolution = 'Hour' "
        "AND period_start >= :start AND period_start < :stop GROUP BY resolution",
    ),
    "country_daily_hours": (
        "DELETE FROM country_daily_hours WHERE day = :start",
        "INSERT INTO country_daily_hours (day, country, publishes, views, publish_seconds, "
        "view_seconds, bytes_in, bytes_out) "
        "SELECT :start, country, SUM(publishes), SUM(views), SUM(publish_seconds), "
        "SUM(view_seconds), SUM(bytes_in), SUM(bytes_out) "
        "FROM account_geo_usage WHERE resolution = 'Hour' "
        "AND period_start >= :start AND period_start < :stop GROUP BY country",
    ),
    # Reads the daily view, so it must run after the daily refresh of the same write.
    "stream_monthly_totals": (
        "DELETE FROM stream_monthly_totals WHERE stream_name = :stream AND month = :start",
        "INSERT INTO stream_monthly_totals (stream_name, month, bytes_in, bytes_out, "
        "days_with_traffic) "
        "SELECT stream_name, :start, SUM(bytes_in), SUM(bytes_out), COUNT(*) "
        "FROM stream_daily_usage WHERE stream_name = :stream "
        "AND day >= :start AND day < :stop GROUP BY stream_name",
    ),
}


@cache
def _statements(rollup: str, dialect: str) -> tuple[sa.TextClause, sa.TextClause]:
    delete, insert = _REFRESH[rollup]
    all_final = "bool_and(is_final)" if dialect == "postgresql" else "MIN(is_final)"
    if dialect == "postgresql":
        # A bare parameter in a select list has no type PostgreSQL can infer.
        insert = insert.replace(
            "SELECT stream_name, :start", "SELECT stream_name, CAST(:start AS timestamptz)"
        )
        insert = insert.replace("SELECT :start", "SELECT CAST(:start AS timestamptz)")
    binds = [sa.bindparam("start", type_=UtcDateTime()), sa.bindparam("stop", type_=UtcDateTime())]
    delete_clause = sa.text(delete).bindparams(binds[0])
    insert_clause = sa.text(insert.format(all_final=all_final)).bindparams(*binds)
    return delete_clause, insert_clause


def _refresh(
    conn: Connection, rollup: str, keys: set[tuple[str, datetime]], unit: Resolution
) -> None:
    if not keys:
        return
    delete, insert = _statements(rollup, conn.dialect.name)
    params = [
        {"stream": stream, "start": start, "stop": next_start(start, unit)}
        for stream, start in sorted(keys)
    ]
    conn.execute(delete, [{"stream": p["stream"], "start": p["start"]} for p in params])
    conn.execute(insert, params)


def refresh_rollups(conn: Connection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bring the rollups fed by `table` up to date with `rows`, just written in this transaction."""
    if table == "stream_usage":
        days: set[tuple[str, datetime]] = set()
        months: set[tuple[str, datetime]] = set()
        for row in rows:
            resolution = row["resolution"]
            if resolution not in ("Hour", "Day"):
                continue
            start = row["period_start"]
            if resolution == "Hour":
                days.add((row["stream_name"], floor(start, Resolution.DAY)))
            months.add((row["stream_name"], floor(start, Resolution.MONTH)))
        _refresh(conn, "stream_daily_hours", days, Resolution.DAY)
        _refresh(conn, "stream_monthly_totals", months, Resolution.MONTH)
    elif table in ("account_usage", "account_geo_usage"):
        rollup = "account_daily_hours" if table == "account_usage" else "country_daily_hours"
        account_days = {
            ("", floor(row["period_start"], Resolution.DAY))
            for row in rows
            if row["resolution"] == "Hour"
        }
        _refresh(conn, rollup, account_days, Resolution.DAY)
