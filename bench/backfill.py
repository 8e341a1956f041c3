"""A backfill of everything the vendor holds, as its own process against `archiver simulate`."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import sqlalchemy as sa

from archiver.simulator import SimConfig, Simulator
from bench.common import (
    NOW,
    TOKEN,
    WORK,
    fresh_sqlite,
)

PEAK_WRAPPER = """
import atexit, sys
from pathlib import Path
def peak():
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            sys.stderr.write(line + chr(10))
atexit.register(peak)
from archiver.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


# (streams, concurrency, requests per second): the old figure, and the 10,000.
BACKFILLS = {1000: (8, 100), 10000: (64, 1000)}


def bench_backfill(lines: list[str], runs: int, streams: int = 1000) -> None:
    concurrency, rate = BACKFILLS[streams]
    port_file = WORK / "sim-port"
    names_file = WORK / "names.txt"
    config = SimConfig(streams=streams, seed=1)
    with Simulator(config) as probe:
        names_file.write_text("\n".join(s.name for s in probe.traffic.streams) + "\n")
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archiver",
            "simulate",
            "--port",
            "0",
            "--streams",
            str(streams),
            "--seed",
            "1",
            "--clock",
            "manual",
            "--start",
            NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        first = sim.stdout.readline()
        base_url = first.split(" on ")[1].split(" ")[0]
        port_file.write_text(base_url)
        results = []
        for run in range(runs):
            url = fresh_sqlite(f"backfill-{run}")
            env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
            env.update(
                {
                    "ARCHIVER_DATABASE_URL": url,
                    "ARCHIVER_API_BASE_URL": base_url,
                    "ARCHIVER_API_TOKEN": TOKEN,
                    "ARCHIVER_NOW": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "ARCHIVER_MAX_REQUESTS_PER_SECOND": str(rate),
                    "ARCHIVER_CONCURRENCY": str(concurrency),
                }
            )
            subprocess.run(
                [sys.executable, "-m", "archiver", "streams", "import", str(names_file)],
                env=env,
                check=True,
                capture_output=True,
            )
            began = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", PEAK_WRAPPER, "backfill"],
                env=env,
                check=False,
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - began
            if done.returncode:  # say why, not only that it failed
                raise SystemExit(
                    f"backfill {streams} run {run} failed after {seconds:.0f} s "
                    f"(exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )
            peak_kb = int(done.stderr.rsplit("VmHWM:", 1)[1].split()[0])
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                requests, rows = conn.execute(
                    sa.text("SELECT requests, rows_written FROM sync_runs WHERE kind = 'backfill'")
                ).one()
            engine.dispose()
            results.append((seconds, int(requests), int(rows), peak_kb / 1024))
            print(
                f"backfill {streams} run {run}: {done.stdout.strip()} "
                f"in {seconds:.1f} s, peak {peak_kb / 1024:.0f} MB, "
                f"load {os.getloadavg()[0]:.1f}"
            )
    finally:
        sim.terminate()
        sim.wait(10)
    seconds = statistics.median(r[0] for r in results)
    fastest = min(r[0] for r in results)
    peak = max(r[3] for r in results)
    lines += [
        f"## Backfill of everything the vendor holds, {streams:,} streams",
        "",
        "`archiver backfill` as its own process against `archiver simulate` in another "
        "(7 days hourly and per-stream, 365 days daily, 24 months monthly), SQLite, "
        f"concurrency {concurrency}, {rate} requests/s. Peak RSS is the backfill process's own "
        f"high-water mark (VmHWM at exit). Load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
        "| wall time (min / median) | requests | rows | peak RSS (largest run) | target |",
        "|---:|---:|---:|---:|---|",
        f"| {fastest:.1f} s / {seconds:.1f} s | {results[0][1]:,} | {results[0][2]:,} | "
        f"{peak:.0f} MB | under 120 s: {'met' if seconds < 120 else 'MISSED'}; "
        f"under 200 MB: {'met' if peak < 200 else 'MISSED'} |",
        "",
    ]
