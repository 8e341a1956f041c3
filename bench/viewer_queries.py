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
import re
import statistics
import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.archive_size import bench_size
from bench.common import machine, migration
from bench.queries_data import RESULTS
from bench.query_cases import readme_examples
from bench.results import put_block
from bench.viewer_data import archive, fill_viewers

STREAM = "stream-0001"
BASELINE = re.compile(r"\b((?:stream|account)_(?:hourly|daily)_viewers)\b")


def questions() -> list[tuple[str, str]]:
    """(label, SQL) of every question timed; dates inside the generated year."""
    readme = readme_examples()
    return [
        ("README: long-sessions (sessions over an hour, a week)", readme["long-sessions"]),
        ("README: peak-viewers (a stream's peak per day, 6 days)", readme["peak-viewers"]),
        (
            "README: session-days (every stream's publishing per day, 5 days)",
            readme["session-days"],
        ),
        (
            "a stream's publishing time and sessions per day, the year",
            "SELECT day, sessions, publishing_seconds FROM stream_daily_sessions "
            f"WHERE stream_name = '{STREAM}' ORDER BY day",
        ),
        (
            "top 10 streams by publishing time, one month",
            "SELECT stream_name, SUM(publishing_seconds) AS seconds FROM stream_daily_sessions "
            "WHERE day >= '2026-11-01' AND day < '2026-12-01' "
            "GROUP BY stream_name ORDER BY seconds DESC, stream_name LIMIT 10",
        ),
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
            f"min and median of all {runs + 1} runs; the same questions over the views as "
            "migration 0011 made them (grouping the 5-minute rows at every query, no rollup), "
            f"same rows, same run. Load average (1, 5, 15 min) before: {load()}.",
            "",
            "| question | cold | min | median | 0011 views: cold | 0011 views: median "
            "| under 0.1 s |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        old = migration("0011_viewer_stats.py")
        with engine.begin() as conn:  # the views as 0011 made them, over the same rows
            for view in old.VIEWS:
                sql = old.viewer_view(dialect, view)
                conn.execute(sa.text(sql.replace(f"VIEW {view}", f"VIEW baseline_{view}")))
        for label, sql in questions():
            times = time_question(engine, sql, runs)
            worst = max(times[0], statistics.median(times))
            old_views = "n/a | n/a"  # a question no 0011 view answered
            if BASELINE.search(sql):
                before = time_question(engine, BASELINE.sub(r"baseline_\1", sql), runs)
                old_views = f"{before[0]:.3f} | {statistics.median(before):.3f}"
            lines.append(
                f"| {label} | {times[0]:.3f} | {min(times):.3f} | "
                f"{statistics.median(times):.3f} | {old_views} | "
                f"{'yes' if worst < 0.1 else 'NO'} |"
            )
            print(lines[-1], flush=True)
        lines += ["", f"Load average after: {load()}.", ""]
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
    RESULTS.write_text(put_block(RESULTS, "bench.viewer_queries", lines))


if __name__ == "__main__":
    raise SystemExit(main())
