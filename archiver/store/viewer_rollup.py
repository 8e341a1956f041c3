"""The viewer rollups (a stream's day, the account's hour), recomputed for the keys written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.store.rollup import ALL_FINAL, JOIN, KEYS, key_params
from archiver.timeutil import Resolution, floor

# As rollup.py: each key is recomputed from its rows (a day of one stream, an hour of the
# account: at most 288 and 12 rows, read by primary key), never adjusted by a delta, since a
# peak cannot be taken back when a row not yet final is overwritten by a lower one. The keys
# arrive as one parameter, built and read as rollup.py does (`key_params`, `KEYS`).
_COUNTS = (
    "MAX(u.active_viewers), SUM(u.views_started), SUM(u.views_ended), {streams}COUNT(*), "
    "{all_final}"
)
_UPDATE = (
    "peak_viewers = excluded.peak_viewers, views_started = excluded.views_started, "
    "views_ended = excluded.views_ended, periods = excluded.periods, is_final = excluded.is_final"
)
_REFRESH = {
    "stream_viewer_stats": (
        "INSERT INTO stream_daily_periods (stream_name, day, peak_viewers, views_started, "
        "views_ended, periods, is_final) SELECT k.stream_name, k.start, "
        + _COUNTS.format(streams="", all_final="{all_final}")
        + " FROM {keys} {join} stream_viewer_stats u ON u.stream_name = k.stream_name "
        "AND u.period_start >= k.start AND u.period_start < k.stop "
        "WHERE true GROUP BY k.stream_name, k.start "
        "ON CONFLICT (stream_name, day) DO UPDATE SET " + _UPDATE
    ),
    "account_viewer_stats": (
        "INSERT INTO account_hourly_periods (hour, peak_viewers, views_started, views_ended, "
        "peak_streams, periods, is_final) SELECT k.start, "
        + _COUNTS.format(streams="MAX(u.streams), ", all_final="{all_final}")
        + " FROM {keys} {join} account_viewer_stats u "
        "ON u.period_start >= k.start AND u.period_start < k.stop "
        "WHERE true GROUP BY k.start "
        "ON CONFLICT (hour) DO UPDATE SET peak_streams = excluded.peak_streams, " + _UPDATE
    ),
}
_UNIT = {"stream_viewer_stats": Resolution.DAY, "account_viewer_stats": Resolution.HOUR}


@cache
def _statement(table: str, dialect: str) -> sa.TextClause:
    return sa.text(
        _REFRESH[table].format(keys=KEYS[dialect], join=JOIN[dialect], all_final=ALL_FINAL[dialect])
    )


def refresh_viewer_rollups(conn: Connection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bring the rollup fed by `table` up to date with `rows`, just written in this transaction."""
    if not rows:
        return
    unit = _UNIT[table]
    starts = {(row.get("stream_name", ""), row["period_start"]) for row in rows}
    keys = sorted({(name, floor(start, unit)) for name, start in starts})
    params = key_params(conn.dialect.name, keys, unit)
    conn.execute(_statement(table, conn.dialect.name), params)


# Any constant shared by every writer of viewer statistics; 0x617276 is "arv".
_VIEWER_LOCK = 0x617276


def serialise_viewer_writers(conn: Connection) -> None:
    """On PostgreSQL, wait for any other transaction writing viewer statistics or sessions: under
    READ COMMITTED a refresh cannot see another writer's uncommitted rows of the same day or hour,
    and its later upsert of the rollup row would drop them (as rollup.serialise_writers)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_VIEWER_LOCK})")
