"""Store throughput of the upsert path against the raw driver, on both databases."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa

from archiver.store import db
from archiver.store.tables import stream_usage
from archiver.store.upsert import _statements, _tuples, upsert_rows
from bench.common import (
    PG_URL,
    fresh_sqlite,
    median_of,
)


def usage_rows(count: int, bump: int) -> list[dict[str, Any]]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    fetched = datetime(2026, 11, 20, tzinfo=UTC)
    return [
        {
            "stream_name": f"stream-{i % 100:04d}",
            "resolution": "Hour",
            "period_start": start + timedelta(hours=i // 100),
            "bytes_in": i + bump,
            "bytes_out": 2 * i + bump,
            "standard_bytes_in": i,
            "standard_bytes_out": i,
            "restream_bytes_in": 0,
            "restream_bytes_out": 0,
            "restream_seconds": 0,
            "cascade_bytes_in": None,
            "cascade_bytes_out": None,
            "fetched_at": fetched,
            "is_final": True,
        }
        for i in range(count)
    ]


def raw_sqlite(path: str, batches: list[list[tuple[Any, ...]]]) -> float:
    import sqlite3

    plan = _statements("stream_usage", "sqlite")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    began = time.perf_counter()
    for batch in batches:
        conn.executemany(plan.insert, batch)
        conn.commit()
    seconds = time.perf_counter() - began
    conn.close()
    return seconds


def raw_postgres(dsn: str, batches: list[list[tuple[Any, ...]]]) -> float:
    plan = _statements("stream_usage", "postgresql")
    with psycopg.connect(dsn) as conn:
        began = time.perf_counter()
        for batch in batches:
            with conn.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS raw_tmp (LIKE stream_usage) "
                    "ON COMMIT DELETE ROWS"
                )
                with cur.copy(plan.copy.replace(plan.temp, "raw_tmp")) as copy:
                    for row in batch:
                        copy.write_row(row)
                cur.execute(plan.insert_from_temp.replace(plan.temp, "raw_tmp"))
            conn.commit()
        return time.perf_counter() - began


def _store_case(
    engine: sa.Engine, url: str, dialect: str, bump: int, total: int, size: int, runs: int
) -> tuple[float, float]:
    """(archiver rows/s, raw rows/s) for inserts (bump 0) or updates (bump 1)."""
    plan = _statements("stream_usage", dialect)
    batches = [usage_rows(total, bump)[i : i + size] for i in range(0, total, size)]
    tuples = [_tuples(b, plan, dialect) for b in batches]

    def clear() -> None:
        with engine.begin() as conn:
            conn.execute(stream_usage.delete())
            if bump:
                upsert_rows(conn=conn, table=stream_usage, rows=usage_rows(total, 0))

    def ours() -> float:
        clear()
        began = time.perf_counter()
        for batch in batches:
            with engine.begin() as conn:
                upsert_rows(conn=conn, table=stream_usage, rows=batch)
        return time.perf_counter() - began

    def raw() -> float:
        clear()
        if dialect == "sqlite":
            return raw_sqlite(url.removeprefix("sqlite:///"), tuples)
        return raw_postgres(url.replace("postgresql+psycopg", "postgresql"), tuples)

    return total / median_of(runs, ours), total / median_of(runs, raw)


def bench_store(lines: list[str], runs: int) -> None:
    total, size = 50_000, 5_000
    lines += [
        "## Store throughput (rows/s) of the upsert path",
        "",
        f"{total:,} `stream_usage` rows in batches of {size:,} (one transaction each), "
        "fresh inserts then updates of the same keys. Raw: sqlite3 `executemany` of the "
        "same prepared upsert; psycopg `COPY` into a temporary table then `INSERT ... "
        "SELECT ... ON CONFLICT`; both given ready-made tuples. Median of "
        f"{runs} runs.",
        "",
        "| database | operation | archiver rows/s | raw rows/s | ratio | issue 24: at least 0.8 |",
        "|---|---|---:|---:|---:|---|",
    ]
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS archiver_bench WITH (FORCE)"))
        conn.execute(sa.text("CREATE DATABASE archiver_bench"))
    pg_url = sa.make_url(PG_URL).set(database="archiver_bench")
    try:
        for dialect in ("sqlite", "postgresql"):
            url = (
                fresh_sqlite("store")
                if dialect == "sqlite"
                else pg_url.render_as_string(hide_password=False)
            )
            engine = db.make_engine(url)
            db.upgrade(engine)
            for operation, bump in (("insert", 0), ("update", 1)):
                ours_rate, raw_rate = _store_case(engine, url, dialect, bump, total, size, runs)
                ratio = ours_rate / raw_rate
                lines.append(
                    f"| {dialect} | {operation} | {ours_rate:,.0f} | {raw_rate:,.0f} | "
                    f"{ratio:.2f} | {'met' if ratio >= 0.8 else 'MISSED'} |"
                )
                print(f"store {dialect} {operation}: {ours_rate:,.0f} vs raw {raw_rate:,.0f}")
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS archiver_bench WITH (FORCE)"))
        admin.dispose()
    lines.append("")
