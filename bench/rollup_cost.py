"""What `stream_country_monthly_totals` (0015) costs the write path: one batch of day rows.

`python -m bench.rollup_cost` builds an archive of N streams with a month of day rows in three
countries each, then upserts one batch of today's rows (B streams x 3 countries, each a
changed partial row) with its rollup refresh and without it, in turns, each in a transaction
rolled back afterwards (every run writes onto the same archive). SQLite: this process's CPU
seconds (the database runs in it); PostgreSQL: wall seconds (the server's work is elsewhere).
Printed only: its figures go into RESULTS.md by hand, with the load average it prints.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.store import db
from archiver.store.owed import Owed
from archiver.store.tables import stream_geo_usage
from archiver.store.upsert import upsert_rows
from bench.common import PG_URL, fresh_sqlite, migration

COUNTRIES = ("US", "DE", "FR")
MONTH = datetime(2026, 11, 1, tzinfo=UTC)
TODAY = MONTH + timedelta(days=29)


def _fill(engine: Engine, streams: int, days: int) -> None:
    """Day rows of every stream on `days` days of November, in SQL: final but TODAY's, which
    the batch then changes (a final row the upsert would keep, and change nothing)."""
    if engine.dialect.name == "sqlite":
        numbers = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {top}) "
        sql = (
            numbers.format(top=max(streams, days))
            + "INSERT INTO stream_geo_usage SELECT printf('stream-%05d', s.i), 'Day', "
            "strftime('%Y-%m-%dT%H:%M:%SZ', :today, printf('-%d days', d.i)), c.country, "
            "1, 10 + s.i % 7, 60, 600, 1000, 2000, :today, d.i > 0 "
            "FROM n s, n d, (SELECT 'US' AS country UNION ALL SELECT 'DE' UNION ALL "
            "SELECT 'FR') c WHERE s.i < :streams AND d.i < :days"
        )
        today: Any = TODAY.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        sql = (
            "INSERT INTO stream_geo_usage SELECT 'stream-' || lpad(s::text, 5, '0'), 'Day', "
            "CAST(:today AS timestamptz) - d * interval '1 day', c, 1, 10 + s % 7, 60, 600, "
            "1000, 2000, CAST(:today AS timestamptz), d > 0 "
            "FROM generate_series(0, :streams - 1) s, generate_series(0, :days - 1) d, "
            "unnest(ARRAY['US', 'DE', 'FR']) c"
        )
        today = TODAY
    with engine.begin() as conn:
        conn.execute(sa.text(sql), {"today": today, "streams": streams, "days": days})
        fill = migration("0015_country_monthly_rollup.py").fill_sql(engine.dialect.name)
        conn.execute(sa.text("DELETE FROM stream_country_monthly_totals"))
        conn.execute(sa.text(fill))
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def _batch(streams: int, batch: int, run: int) -> list[dict[str, Any]]:
    fetched = TODAY + timedelta(hours=12, minutes=run)
    step = max(streams // batch, 1)
    return [
        {
            "stream_name": f"stream-{s:05d}",
            "resolution": "Day",
            "period_start": TODAY,
            "country": country,
            "publishes": 2,
            "views": 20 + run,
            "publish_seconds": 120,
            "view_seconds": 1200,
            "bytes_in": 3000,
            "bytes_out": 4000 + run,
            "fetched_at": fetched,
            "is_final": False,
        }
        for s in range(0, step * batch, step)
        for country in COUNTRIES
    ]


def _once(engine: Engine, rows: list[dict[str, Any]], refresh: bool) -> float:
    clock = time.process_time if engine.dialect.name == "sqlite" else time.perf_counter
    conn = engine.connect()
    try:
        began = clock()
        with conn.begin() as transaction:
            # Owed and never paid: the rows are written, the refresh is not.
            upsert_rows(
                conn=conn, table=stream_geo_usage, rows=rows, owed=None if refresh else Owed()
            )
            spent = clock() - began
            transaction.rollback()
    finally:
        conn.close()
    return spent


def measure(url: str, streams: int, days: int, batch: int, runs: int) -> str:
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        _fill(engine, streams, days)
        with_refresh: list[float] = []
        without: list[float] = []
        for run in range(runs):
            rows = _batch(streams, batch, run)
            with_refresh.append(_once(engine, rows, refresh=True))
            without.append(_once(engine, rows, refresh=False))
    finally:
        engine.dispose()
    unit = "CPU" if url.startswith("sqlite") else "wall"
    return (
        f"{engine.dialect.name}: {streams:,} streams x {days} days x 3 countries; a batch of "
        f"{batch * len(COUNTRIES):,} day rows ({batch} streams): {min(with_refresh) * 1000:.0f} ms "
        f"{unit} with the rollup, {min(without) * 1000:.0f} ms without (min of {runs}; medians "
        f"{sorted(with_refresh)[runs // 2] * 1000:.0f} and {sorted(without)[runs // 2] * 1000:.0f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rollup_cost", description=__doc__)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=640, help="streams per batch")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    print(f"load average at the start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.db in ("sqlite", "both"):
        url = fresh_sqlite("rollup-cost")
        print(measure(url, args.streams, args.days, args.batch, args.runs), flush=True)
    if args.db in ("postgresql", "both"):
        url = str(sa.make_url(PG_URL).set(database="bench_rollup_cost"))
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("DROP DATABASE IF EXISTS bench_rollup_cost")
            conn.exec_driver_sql("CREATE DATABASE bench_rollup_cost")
        try:
            print(measure(url, args.streams, args.days, args.batch, args.runs), flush=True)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql("DROP DATABASE IF EXISTS bench_rollup_cost WITH (FORCE)")
            admin.dispose()
    print(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
