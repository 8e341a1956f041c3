"""The steady 10,000-stream cycle against its network floor, on SQLite and PostgreSQL, on a
fresh archive (no planner statistics) and an old one (`python -m bench.steady`)."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from archiver.api.client import AnalyticsClient
from archiver.config import get_settings
from archiver.cycle.sync import plan_cycle
from archiver.store import db
from bench import steady_archive
from bench.common import NOW, STEADY, TOKEN, WORK, machine
from bench.results import merge

# The vendor in its own process (as `archiver simulate` runs), answering after `latency` ms.
SIMULATOR = """
import sys, time
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.server import Faults
from datetime import datetime
start = datetime.fromisoformat(sys.argv[3])
sim = Simulator(SimConfig(streams=int(sys.argv[1]), seed=1), token="sim-token", start=start,
                faults=Faults(latency_ms=float(sys.argv[2])))
sim.start()
print(sim.url, flush=True)
while True:
    time.sleep(3600)
"""


def _simulator(streams: int, latency: float) -> tuple[subprocess.Popen[str], str]:
    sim = subprocess.Popen(
        [sys.executable, "-c", SIMULATOR, str(streams), str(latency), NOW.isoformat()],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    return sim, sim.stdout.readline().strip()


def _set_clock(base_url: str) -> None:
    import httpx

    httpx.post(f"{base_url}/_sim/clock", json={"now": STEADY.isoformat()}).raise_for_status()


def _settings(base_url: str, url: str, concurrency: int, rate: float) -> object:
    return get_settings(
        database_url=url,
        api_base_url=base_url,
        api_token=TOKEN,
        now=STEADY,
        concurrency=concurrency,
        max_requests_per_second=rate,
        # The feed and viewer reads have watermarks of their own, which this synthetic
        # archive does not set: they would read their whole history, not a steady cycle.
        feeds=False,
        viewers=False,
    )


def _floor(base_url: str, url: str, concurrency: int, rate: float) -> tuple[float, int]:
    """The cycle's own requests fetched and dropped: the time the network alone takes."""
    settings: object = _settings(base_url, url, concurrency, rate)
    engine = db.make_engine(url)
    plan = plan_cycle(engine=engine, settings=settings, now=STEADY)  # type: ignore[arg-type]
    engine.dispose()
    requests = [p.request for p in plan.requests]
    options = settings.client_options()  # type: ignore[attr-defined]
    with AnalyticsClient.from_options(options) as client:
        began = time.perf_counter()
        with closing(client.fetch_all(requests)) as results:
            for _ in results:
                pass
        return time.perf_counter() - began, len(requests)


class Stopwatch:
    """Seconds spent inside the functions it wraps (the cycle's store thread: its plan, its
    storing), whichever version of the code is measured."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, module: Any, name: str, label: str) -> None:
        inner = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent = time.perf_counter() - began
                self.seconds[label] = self.seconds.get(label, 0.0) + spent

        setattr(module, name, timed)
        self._undo.append((module, name, inner))

    def restore(self) -> None:
        for module, name, inner in reversed(self._undo):
            setattr(module, name, inner)
        self._undo.clear()


def _watch() -> Stopwatch:
    from archiver.cycle import sync

    watch = Stopwatch()
    watch.wrap(sync, "_start", "plan")
    if hasattr(sync, "batch"):
        watch.wrap(sync.batch, "store_answers", "store")
    else:  # the code before batches: one answer at a time
        watch.wrap(sync, "store_answer", "store")
    return watch


def _cycle(
    base_url: str, url: str, concurrency: int, rate: float, profile: Path | None
) -> tuple[float, dict[str, float]]:
    from archiver.cycle.sync import run_cycle

    settings: object = _settings(base_url, url, concurrency, rate)
    watch = _watch()
    engine = db.make_engine(url)
    profiler = cProfile.Profile() if profile else None
    try:
        options = settings.client_options()  # type: ignore[attr-defined]
        with AnalyticsClient.from_options(options) as client:
            began = time.perf_counter()
            if profiler:
                profiler.enable()
            report = run_cycle(engine=engine, client=client, settings=settings)  # type: ignore[arg-type]
            if profiler:
                profiler.disable()
            seconds = time.perf_counter() - began
    finally:
        engine.dispose()
        watch.restore()
    assert report.ok, report.errors[:3]
    if profiler and profile:
        profiler.dump_stats(profile)
        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(35)
    spent = ", ".join(f"{k} {v:.1f} s" for k, v in watch.seconds.items())
    print(
        f"  cycle: {report.requests} requests, {report.rows} rows, {seconds:.1f} s ({spent})",
        flush=True,
    )
    return seconds, watch.seconds


def _figure(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.steady", description=__doc__)
    parser.add_argument("--streams", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=50.0, help="ms the vendor waits")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--states", default="fresh,old")
    parser.add_argument("--label", default="this branch", help="what code is measured")
    parser.add_argument("--profile", type=Path, help="cProfile the first cycle into this file")
    parser.add_argument("--output", type=Path, help="merge the section into this RESULTS.md")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    sim, base_url = _simulator(args.streams, args.latency)
    rows: list[str] = []
    floors: list[float] = []
    requests = 0
    try:
        _set_clock(base_url)
        names = steady_archive.names(args.streams)
        for kind in args.databases.split(","):
            template = steady_archive.template(kind, names)
            for state in args.states.split(","):
                url = steady_archive.copy(kind, template, old=state == "old")
                if not floors:
                    for _ in range(args.runs):
                        seconds, requests = _floor(base_url, url, args.concurrency, args.rate)
                        floors.append(seconds)
                        print(f"floor: {requests} requests in {seconds:.1f} s", flush=True)
                times, stores, plans = [], [], []
                for run in range(args.runs):
                    url = steady_archive.copy(kind, template, old=state == "old")
                    print(f"{args.label}: {kind} {state} run {run}", flush=True)
                    profile = args.profile if run == 0 else None
                    if profile:
                        profile = profile.with_name(f"{profile.stem}-{kind}-{state}.prof")
                    seconds, spent = _cycle(base_url, url, args.concurrency, args.rate, profile)
                    times.append(seconds)
                    stores.append(spent.get("store", 0.0))
                    plans.append(spent.get("plan", 0.0))
                floor = statistics.median(floors)
                ratio = statistics.median(times) / floor
                bound = requests / min(args.rate, args.concurrency * 1000 / args.latency)
                rows.append(
                    f"| {args.label} | {kind} | {state} | {_figure(times)} | {ratio:.1f}x | "
                    f"{statistics.median(times) / bound:.1f}x | {_figure(stores)} | "
                    f"{_figure(plans)} | {os.getloadavg()[0]:.1f} |"
                )
                print(rows[-1], flush=True)
    finally:
        sim.terminate()
        sim.wait(10)
        if "postgresql" in args.databases:
            steady_archive.pg(f"DROP DATABASE IF EXISTS {steady_archive.PG_DATABASE}")
            steady_archive.pg(f"DROP DATABASE IF EXISTS {steady_archive.PG_DATABASE}_template")
    print(f"network floor: {_figure(floors)} s")
    for row in rows:
        print(row)
    if args.output:
        _write(args, rows, floors)
    return 0


def _write(args: argparse.Namespace, rows: list[str], floors: list[float]) -> None:
    lines = [
        f"## Steady cycle, {args.streams:,} streams, vs the network floor (#24 goal 1)",
        "",
        f"One steady-state cycle (15 minutes after the previous one) against the simulator "
        f"in its own process, {args.latency:.0f} ms latency, concurrency {args.concurrency}, "
        f"{args.rate:.0f} requests/s. Network floor: the same cycle's requests fetched "
        f"and dropped, {_figure(floors)} s (min / median of {args.runs}). Fresh: the archive "
        "as created (no planner statistics: PostgreSQL runs with autovacuum off here); old: "
        "after `ANALYZE`. Seconds are min / median of the runs; load average at each row's end. "
        "The rate-cap floor is the requests over the rate cap (or concurrency over latency, "
        "if lower): what the network allows. The measured floor is what this simulator, "
        "one Python process on a shared machine, serves; storing and planning are the "
        "seconds the cycle's one thread spent storing answers and planning (the fetch "
        "threads run meanwhile).",
        "",
        "| code | database | archive | cycle s | / measured floor | / rate-cap floor "
        "| storing s | planning s | load |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    stamp = [line for line in machine() if line]
    target = args.output
    target.write_text(merge(target, "\n".join(lines), stamp))


if __name__ == "__main__":
    raise SystemExit(main())
