"""Viewer and session questions at a year of 1,000 streams, and the archive's size per stream-day.

Run `python -m bench.viewer_queries` (both databases; `--streams`, `--days` for another size).
The sessions and viewer statistics are generated in SQL (bench/viewer_data.py); each question
runs first on a new connection (cold: the database's own cache empty, SQLite; PostgreSQL's
shared buffers and the OS page cache stay as they are), then `--runs` times more on it. The
size is measured on a second archive holding every kind of row (bench.queries' usage rows and
rollups, and these). Both go into a section of bench/RESULTS.md of their own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.store import db
from bench.common import machine
from bench.queries_data import PG_URL, RESULTS, WORK, build_rollups, fill
from bench.query_cases import readme_examples
from bench.viewer_data import fill_viewers

STREAM = "stream-0001"


def questions() -> list[tuple[str, str]]:
    """(label, SQL) of every question timed; dates inside the generated year."""
    readme = readme_examples()
    return [
        ("README: long-sessions (sessions over an hour, a week)", readme["long-sessions"]),
        ("README: peak-viewers (a stream's peak per day, 6 days)", readme["peak-viewers"]),
        (
            "a stream's sessions, one month",
            "SELECT started, ended, duration_seconds FROM stream_sessions "
            f"WHERE stream_name = '{STREAM}' AND started >= '2026-11-01' "
            "AND started < '2026-12-01' ORDER BY started",
        ),
        (
            "a stream's peak viewers per hour, one week",
            "SELECT hour, peak_viewers, views_started FROM stream_hourly_viewers "
            f"WHERE stream_name = '{STREAM}' AND hour >= '2026-11-24' AND hour < '2026-12-01' "
            "ORDER BY hour",
        ),
        (
            "a stream's peak viewers per day, the year",
            "SELECT day, peak_viewers FROM stream_daily_viewers "
            f"WHERE stream_name = '{STREAM}' ORDER BY day",
        ),
        (
            "the account's peak viewers per day, one month",
            "SELECT day, peak_viewers, peak_streams FROM account_daily_viewers "
            "WHERE day >= '2026-11-01' AND day < '2026-12-01' ORDER BY day",
        ),
        (
            "the account's peak viewers per hour, one week",
            "SELECT hour, peak_viewers FROM account_hourly_viewers "
            "WHERE hour >= '2026-11-24' AND hour < '2026-12-01' ORDER BY hour",
        ),
        (
            "top 10 streams by peak viewers, one day",
            "SELECT stream_name, peak_viewers FROM stream_daily_viewers "
            "WHERE day >= '2026-11-20' AND day < '2026-11-21' "
            "ORDER BY peak_viewers DESC, stream_name LIMIT 10",
        ),
    ]


@contextmanager
def archive(dialect: str, label: str) -> Iterator[tuple[Engine, str]]:
    """A fresh, migrated archive (a SQLite file or a PostgreSQL database), dropped after."""
    WORK.mkdir(exist_ok=True)
    admin, name = None, f"archiver_bench_v_{uuid.uuid4().hex[:8]}"
    path = WORK / f"viewers-{label}.db"
    if dialect == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        yield engine, url
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


def time_question(engine: Engine, sql: str, runs: int) -> list[float]:
    """Seconds of each run: the first on a new connection (cold), then `runs` more."""
    engine.dispose()  # no pooled connection: the first run starts with an empty cache
    times = []
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET TIME ZONE 'UTC'"))  # date literals mean UTC midnight
        for _ in range(runs + 1):
            began = time.perf_counter()
            conn.execute(sa.text(sql)).all()
            times.append(time.perf_counter() - began)
    return times


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def bench_questions(dialect: str, streams: int, days: int, runs: int) -> list[str]:
    with archive(dialect, "queries") as (engine, _):
        began = time.perf_counter()
        counts = fill_viewers(engine, streams, days)
        filled = time.perf_counter() - began
        print(f"{dialect}: {counts} in {filled:.0f} s", flush=True)
        lines = [
            f"### {dialect}: {streams:,} streams x {days} days: "
            + ", ".join(f"{n:,} rows of `{t}`" for t, n in counts.items()),
            "",
            f"Generated in {filled:.0f} s. Seconds: the cold run (first, new connection), then "
            f"min and median of all {runs + 1} runs; load average (1, 5, 15 min) before: "
            f"{load()}.",
            "",
            "| question | cold | min | median | under 0.1 s |",
            "|---|---:|---:|---:|---|",
        ]
        for label, sql in questions():
            times = time_question(engine, sql, runs)
            worst = max(times[0], statistics.median(times))
            lines.append(
                f"| {label} | {times[0]:.3f} | {min(times):.3f} | "
                f"{statistics.median(times):.3f} | {'yes' if worst < 0.1 else 'NO'} |"
            )
            print(lines[-1], flush=True)
        lines += ["", f"Load average after: {load()}.", ""]
    return lines


def table_sizes(engine: Engine) -> dict[str, tuple[int, int]]:
    """(rows, bytes on disk with its indexes) of every table holding rows."""
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        rows = {
            t: int(conn.execute(sa.text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one())
            for t in tables
        }
        if conn.dialect.name == "postgresql":
            size = {
                t: int(
                    conn.execute(sa.text(f"SELECT pg_total_relation_size('\"{t}\"')")).scalar_one()
                )
                for t in tables
            }
        else:  # every b-tree's pages (table and its indexes), from SQLite's dbstat
            owner = {
                r.name: r.tbl_name
                for r in conn.execute(sa.text("SELECT name, tbl_name FROM sqlite_master"))
            }
            size = dict.fromkeys(tables, 0)
            for name, pages in conn.execute(
                sa.text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            ):
                table = owner.get(name, name)
                if table in size:
                    size[table] += int(pages)
    return {t: (rows[t], size[t]) for t in tables if rows[t] and t != "alembic_version"}


def bench_size(streams: int, days: int) -> list[str]:
    """Bytes on disk per stream-day (tables keyed by stream) and per day (the account's)."""
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for dialect in ("sqlite", "postgresql"):
        with archive(dialect, "size") as (engine, _):
            fill(engine, streams, days)
            build_rollups(engine)
            fill_viewers(engine, streams, days)
            found[dialect] = table_sizes(engine)
            with engine.connect() as conn:
                inspector = sa.inspect(conn)
                keyed = {
                    t
                    for t in found[dialect]
                    if "stream_name" in {c["name"] for c in inspector.get_columns(t)}
                }
                empty = sorted(set(inspector.get_table_names()) - set(found[dialect]))
    lite, pg = found["sqlite"], found["postgresql"]
    lines = [
        f"Archive of {streams:,} streams x {days} days: bench.queries' usage rows (every stream "
        "every hour, a Day row a day, three countries a day; the account's hours, days, months "
        "and ten countries an hour) and their rollups (filled as migration 0004 does), and the "
        "sessions and viewer statistics above. Bytes on disk of each table with its indexes "
        "(SQLite: its b-tree pages, from `dbstat`; PostgreSQL: `pg_total_relation_size`, right "
        "after the load), per stream-day for the tables keyed by stream, per day for the "
        "account's. Empty here (not generated): "
        + ", ".join(f"`{t}`" for t in empty if t != "alembic_version")
        + ".",
        "",
        "| table | rows | SQLite bytes | PostgreSQL bytes | SQLite per unit | PostgreSQL per unit "
        "| unit |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    sums = {"stream-day": [0, 0], "day": [0, 0]}
    for table in sorted(set(lite) | set(pg), key=lambda t: (t not in keyed, -pg.get(t, (0, 0))[1])):
        unit, per = ("stream-day", streams * days) if table in keyed else ("day", days)
        rows = max(lite.get(table, (0, 0))[0], pg.get(table, (0, 0))[0])
        a, b = lite.get(table, (0, 0))[1], pg.get(table, (0, 0))[1]
        sums[unit][0] += a
        sums[unit][1] += b
        lines.append(
            f"| {table} | {rows:,} | {a:,} | {b:,} | {a / per:,.0f} | {b / per:,.0f} | {unit} |"
        )
    per_stream = [v / (streams * days) for v in sums["stream-day"]]
    per_day = [v / days for v in sums["day"]]
    lines += [
        "",
        f"Tables keyed by stream: **{per_stream[0]:,.0f} bytes per stream-day on SQLite, "
        f"{per_stream[1]:,.0f} on PostgreSQL**; the account's: {per_day[0]:,.0f} and "
        f"{per_day[1]:,.0f} bytes per day. All tables at 1,000 streams: "
        f"{per_stream[0] + per_day[0] / 1000:,.0f} (SQLite) and "
        f"{per_stream[1] + per_day[1] / 1000:,.0f} (PostgreSQL) bytes per stream-day, "
        f"{(per_stream[0] * 1000 + per_day[0]) * 365 / 1e9:.1f} GB and "
        f"{(per_stream[1] * 1000 + per_day[1]) * 365 / 1e9:.1f} GB a year.",
        "",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.viewer_queries", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000, help="streams (default 1,000)")
    parser.add_argument("--days", type=int, default=365, help="days (default 365)")
    parser.add_argument("--runs", type=int, default=3, help="runs after the cold one")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--size-streams", type=int, default=100, help="size archive's streams")
    parser.add_argument("--size-days", type=int, default=90, help="size archive's days")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    lines = [
        "## Viewer and session questions, and the archive's size "
        "(`python -m bench.viewer_queries`)",
        "",
        *machine(),
        "- Other helpers' work shared the machine's 2 cores during this run (see each load "
        "average): figures are upper bounds.",
        "",
    ]
    dialects = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    for dialect in dialects:
        lines += bench_questions(dialect, args.streams, args.days, args.runs)
    lines += ["### Size per stream-day", "", *bench_size(args.size_streams, args.size_days)]
    print("\n".join(lines))
    if not args.no_record:
        record(lines)
    return 0


def record(lines: list[str]) -> None:
    """Put `lines` in RESULTS.md in place of the previous figures of this benchmark."""
    begin, end = "<!-- bench.viewer_queries: begin -->", "<!-- bench.viewer_queries: end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
