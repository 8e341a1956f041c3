"""Query benchmark on a synthetic archive of years' scale: views, report and export, vs 0002.

Run `python -m bench.queries` (1,000 streams over a year, about 9 million hourly rows) or
`python -m bench.queries --streams 100` for a smaller archive. Every query is timed on the
current views and, in the same run on the same data, on the views of migration 0002 (the
baseline, created beside them under `baseline_*` names). The figures go into a section of
bench/RESULTS.md of their own.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.reading.export import export_rows, write_export
from archiver.store import db
from bench.common import machine
from bench.queries_data import (
    FIRST,
    PG_URL,
    RESULTS,
    WORK,
    build_rollups,
    fill,
)
from bench.query_cases import cases, timed
from bench.results import put_block
from bench.store_speed import bench_store
from bench.viewer_data import fill_viewers


def export_speed(engine: Engine, url: str, runs: int) -> tuple[float, float, int]:
    """(archiver export seconds, the database's own dump seconds, rows) for stream_usage:
    medians of `runs` runs of each, taken in turn so that both see the same machine."""
    ours, theirs = [], []
    for _ in range(runs):
        our, their, rows = _export_once(engine, url)
        ours.append(our)
        theirs.append(their)
    return statistics.median(ours), statistics.median(theirs), rows


def _export_once(engine: Engine, url: str) -> tuple[float, float, int]:
    with engine.connect() as conn:
        rows = int(conn.execute(sa.text("SELECT COUNT(*) FROM stream_usage")).scalar_one())
    began = time.perf_counter()
    with engine.connect() as conn, open(os.devnull, "w") as sink:
        write_export(export_rows(conn, "stream_usage"), "csv", sink)
    ours = time.perf_counter() - began
    began = time.perf_counter()
    if engine.dialect.name == "sqlite":
        path = url.removeprefix("sqlite:///")
        with open(os.devnull, "w") as sink:
            subprocess.run(
                ["sqlite3", "-csv", "-header", path, "SELECT * FROM stream_usage"],
                stdout=sink,
                check=True,
            )
    else:
        raw = engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy("COPY stream_usage TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                buffer = io.BytesIO()
                for block in copy:
                    buffer.write(block)
                    if buffer.tell() > 1 << 24:
                        buffer.seek(0)
                        buffer.truncate()
        finally:
            raw.close()
    theirs = time.perf_counter() - began
    return ours, theirs, rows


def bench(dialect: str, streams: int, days: int, runs: int, *, export: bool) -> list[str]:
    WORK.mkdir(exist_ok=True)
    admin = None
    name = f"archiver_bench_q_{uuid.uuid4().hex[:8]}"
    if dialect == "sqlite":
        path = WORK / f"queries-{streams}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = db.make_engine(url)
    lines: list[str] = []
    try:
        db.upgrade(engine)
        began = time.perf_counter()
        hourly = fill(engine, streams, days)
        viewers = fill_viewers(engine, streams, days)  # the README's session and viewer examples
        filled = time.perf_counter() - began
        began = time.perf_counter()
        build_rollups(engine)
        rolled = time.perf_counter() - began
        print(
            f"{dialect}: {hourly:,} hourly rows in {filled:.0f} s, rollups {rolled:.0f} s",
            flush=True,
        )
        lines += [
            f"### {dialect}: {streams:,} streams x {days} days = {hourly:,} hourly stream rows, "
            f"{viewers['stream_viewer_stats']:,} 5-minute stream viewer rows",
            "",
            f"Generated in {filled:.0f} s; rollups built from them (as migration 0004 does) in "
            f"{rolled:.0f} s. Seconds, median of {runs} runs (one run where it took over 5 s).",
            "",
            "| question | current | baseline (0002 views) | speed-up | under 0.1 s (issue 24) |",
            "|---|---:|---:|---:|---|",
        ]
        end = FIRST + timedelta(days=days)
        with engine.connect() as conn:
            for label, current, old in cases(conn, end):
                ours = timed(runs, current)
                theirs = timed(runs, old)
                print(f"{dialect} {label}: {ours:.3f} s vs {theirs:.3f} s", flush=True)
                lines.append(
                    f"| {label} | {ours:.3f} | {theirs:.3f} | {theirs / ours:,.1f}x | "
                    f"{'yes' if ours < 0.1 else 'NO'} |"
                )
        if not export:
            return [*lines, ""]
        ours, theirs, rows = export_speed(engine, url, runs)
        tool = "sqlite3 -csv" if dialect == "sqlite" else "COPY ... TO STDOUT (csv)"
        lines += [
            "",
            f"Export of `stream_usage` ({rows:,} rows) as CSV: `archiver export` {ours:.1f} s "
            f"({rows / ours:,.0f} rows/s) against {tool} {theirs:.1f} s ({rows / theirs:,.0f} "
            f"rows/s): {theirs / ours:.2f} of the database's own dump speed "
            "(issue 24: at least 0.6); "
            f"medians of {runs} runs each.",
            "",
        ]
        print(lines[-2], flush=True)
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        elif dialect == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(str(WORK / f"queries-{streams}.db") + suffix).unlink(missing_ok=True)
    return lines


def record(lines: list[str], streams: int, days: int) -> None:
    """Put `lines` in RESULTS.md, replacing the previous figures of the same size only."""
    RESULTS.write_text(put_block(RESULTS, f"bench.queries {streams}x{days}", lines))


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queries", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000, help="streams (default 1,000)")
    parser.add_argument("--days", type=int, default=365, help="days of history (default 365)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", help="default both"
    )
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument(
        "--store",
        action="store_true",
        help="also the write path's throughput with the rollups (bench's store figures)",
    )
    parser.add_argument(
        "--skip-export", action="store_true", help="leave out the export measurement (slow)"
    )
    args = parser.parse_args()
    load, about = _load(), machine()
    lines = [
        f"## Queries at scale (`python -m bench.queries --streams {args.streams} "
        f"--days {args.days}`)",
        "",
        *about,
        "- Current: the views over rollups kept by the write path (0004, 0012-0015). Baseline: "
        "migration 0002's views (computed from the raw rows at query time) on the same data, "
        "same run; for README's stream-countries and a month's countries per stream, the day "
        "rows of `stream_geo_usage` summed at each read (before 0015). The archive is generated in "
        "SQL: every stream has every hour of the year, a "
        "Day row for every day but the last two, three countries a day; the account has "
        "hours, days, months and ten countries an hour; sessions and viewer statistics as "
        "bench/viewer_data.py makes them.",
        "",
    ]
    dialects = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    for dialect in dialects:
        lines += bench(dialect, args.streams, args.days, args.runs, export=not args.skip_export)
    if args.store:
        WORK.mkdir(exist_ok=True)
        bench_store(lines, args.runs)
    lines.insert(
        2 + len(machine()),
        f"- load average (1, 5, 15 min) at the start: {load}; at the end: {_load()}",
    )
    print("\n".join(lines))
    if not args.no_record:
        record(lines, args.streams, args.days)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
