"""Run every benchmark and record the figures, with the machine and date, in bench/RESULTS.md."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bench.backfill import bench_backfill
from bench.common import HERE, WORK, machine
from bench.cycles import bench_cycle_time, bench_requests_per_cycle
from bench.graphql_requests import bench_graphql_requests
from bench.results import merge
from bench.startup import bench_startup
from bench.store_speed import bench_store


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--only",
        default="requests,graphql,cycle,backfill,store,startup",
        help="comma-separated subset of: requests, graphql, cycle, backfill, store, startup",
    )
    parser.add_argument(
        "--backfill-streams",
        default="1000,10000",
        help="comma-separated stream counts for the backfill figure: 1000, 10000",
    )
    args = parser.parse_args()
    chosen = set(args.only.split(","))
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    lines = [
        "# Benchmark results",
        "",
        "Produced by `.venv/bin/python -m bench` (every figure below, in one run; "
        "nothing here is a timed test).",
        "",
        *machine(),
        "",
    ]
    if "requests" in chosen:
        bench_requests_per_cycle(lines)
    if "graphql" in chosen:
        bench_graphql_requests(lines)
    if "cycle" in chosen:
        bench_cycle_time(lines, args.runs)
    if "backfill" in chosen:
        for streams in (int(n) for n in args.backfill_streams.split(",")):
            bench_backfill(lines, args.runs, streams)
    if "store" in chosen:
        bench_store(lines, args.runs)
    if "startup" in chosen:
        bench_startup(lines, args.runs)
    # A partial run (`--only`) replaces its own sections and keeps every other one.
    stamp = [line for line in machine() if line]
    args.output.write_text(merge(args.output, "\n".join(lines), stamp))
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
