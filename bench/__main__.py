"""Run every benchmark and record the figures, with the machine and date, in bench/RESULTS.md."""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa

from archiver.api.client import AnalyticsClient
from archiver.config import get_settings
from archiver.cycle.streams import add_streams
from archiver.cycle.sync import run_cycle
from archiver.datasets import ENDPOINTS
from archiver.rules.plan import Policy, Scope
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.server import Faults
from archiver.store import db
from archiver.store.state import start_scopes
from archiver.store.tables import stream_usage
from archiver.store.upsert import _statements, _tuples, upsert_rows
from archiver.timeutil import Resolution
from archiver.vocabulary import StreamSource

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
STEADY = NOW + timedelta(minutes=15)
TOKEN = "sim-token"
PG_URL = os.environ.get(
    "ARCHIVER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def fresh_sqlite(name: str) -> str:
    path = WORK / f"{name}.db"
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def settings_for(sim: Simulator, url: str, now: datetime, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "database_url": url,
        "api_base_url": sim.url,
        "api_token": TOKEN,
        "now": now,
    }
    values.update(extra)
    return get_settings(**values)


def cycle(sim: Simulator, url: str, now: datetime, **extra: Any) -> Any:
    sim.set_now(now)
    settings = settings_for(sim, url, now, **extra)
    engine = db.make_engine(url)
    try:
        with AnalyticsClient.from_options(settings.client_options()) as client:
            report = run_cycle(engine=engine, client=client, settings=settings)
    finally:
        engine.dispose()
    assert report.ok, report.errors[:3]
    return report


def prepare_steady_state(sim: Simulator, url: str, names: list[str], *, synthetic: bool) -> None:
    """Track every name and bring every scope to its steady-state watermark."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        add_streams(conn=conn, names=names, source=StreamSource.CONFIG, now=NOW - timedelta(days=1))
    if synthetic:
        # As if the previous cycle (at NOW) had stored everything: every watermark at the
        # first bucket not yet final then.
        policy = Policy()
        marks = {}
        for endpoint in ENDPOINTS:
            for resolution in endpoint.resolutions:
                mark = policy.first_unfinal(resolution, NOW)
                if resolution is Resolution.MONTH:
                    mark = NOW.replace(day=1, hour=0, minute=0)
                keys = names if endpoint.takes_streams else [""]
                for key in keys:
                    marks[Scope(endpoint.dataset, key, resolution)] = mark
        with db.transaction(engine) as conn:
            start_scopes(conn=conn, watermarks=marks, gaps=[], recorded_at=NOW)
        engine.dispose()
        return
    engine.dispose()
    # One cycle starts every name: the steady state measured next has no new names left.
    cycle(
        sim,
        url,
        NOW,
        concurrency=16,
        max_requests_per_second=1000.0,
        max_new_streams_per_cycle=len(names),
    )


def minimum_requests(sim: Simulator, streams: int, now: datetime) -> int:
    live = sum(1 for _ in sim.traffic.live_streams(now))
    discovery_pages = max(1, math.ceil(live / 100))
    account = sum(len(e.resolutions) for e in ENDPOINTS if not e.takes_streams)
    per_batch = sum(len(e.resolutions) for e in ENDPOINTS if e.takes_streams)
    return discovery_pages + account + per_batch * math.ceil(streams / 10)


def bench_requests_per_cycle(lines: list[str]) -> None:
    lines += [
        "## Requests per steady-state cycle",
        "",
        "Counted by the simulator during one cycle 15 minutes after the previous one; "
        "minimum = discovery pages + every account endpoint and resolution (5) + 4 per "
        "batch of 10 streams.",
        "",
        "| streams | requests | minimum | ratio | state before the cycle |",
        "|---:|---:|---:|---:|---|",
    ]
    for streams in (10, 100, 1000, 10000):
        config = SimConfig(streams=streams, seed=1)
        with Simulator(config, token=TOKEN, start=NOW) as sim:
            names = [s.name for s in sim.traffic.streams]
            url = fresh_sqlite(f"requests-{streams}")
            synthetic = streams > 1000
            prepare_steady_state(sim, url, names, synthetic=synthetic)
            before = sim.stats_payload()["api_requests"]
            cycle(sim, url, STEADY, concurrency=16, max_requests_per_second=1000.0, discovery=True)
            counted = sim.stats_payload()["api_requests"] - before
            minimum = minimum_requests(sim, streams, STEADY)
        how = "watermarks set as a finished cycle leaves them" if synthetic else "a real backfill"
        lines.append(
            f"| {streams:,} | {counted:,} | {minimum:,} | {counted / minimum:.2f} | {how} |"
        )
        print(f"requests per cycle: {streams} streams: {counted} of minimum {minimum}")
    lines.append("")


def baseline_sequential(sim: Simulator, names: list[str]) -> float:
    """The vendor tutorial's way: one request per stream and endpoint, one after another."""
    start = time.perf_counter()
    with httpx.Client(base_url=sim.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for endpoint in ENDPOINTS:
            for resolution in endpoint.resolutions:
                stop = STEADY.replace(minute=0) + timedelta(hours=1)
                first = Policy().first_unfinal(resolution, NOW)
                if resolution is Resolution.MONTH:
                    first = NOW.replace(day=1, hour=0, minute=0)
                    stop = datetime(2026, 12, 1, tzinfo=UTC)
                elif resolution is Resolution.DAY:
                    stop = datetime(2026, 11, 21, tzinfo=UTC)
                params = [
                    ("startDate", first.strftime("%Y-%m-%dT%H:%M:%SZ")),
                    ("stopDate", stop.strftime("%Y-%m-%dT%H:%M:%SZ")),
                    ("resolution", resolution.value),
                ]
                targets: list[list[tuple[str, str]]] = (
                    [[("streamNames", n)] for n in names] if endpoint.takes_streams else [[]]
                )
                for extra in targets:
                    response = http.get(endpoint.path, params=tuple(params + extra))
                    assert response.status_code == 200
    return time.perf_counter() - start


def bench_cycle_time(lines: list[str], runs: int) -> None:
    streams, sample = 1000, 100
    config = SimConfig(streams=streams, seed=1)
    with Simulator(config, token=TOKEN, start=NOW) as sim:
        names = [s.name for s in sim.traffic.streams]
        url = fresh_sqlite("cycle-time")
        prepare_steady_state(sim, url, names, synthetic=False)
        sim.faults = Faults(latency_ms=50)
        sim.set_now(STEADY)
        timings = {}
        for label, extra in (
            ("defaults (concurrency 8, 20 requests/s)", {}),
            (
                "concurrency 16, 50 requests/s (the vendor client's own cap)",
                {"concurrency": 16, "max_requests_per_second": 50.0},
            ),
            (
                "concurrency 16, 100 requests/s",
                {"concurrency": 16, "max_requests_per_second": 100.0},
            ),
        ):

            def measure(extra: dict[str, Any] = extra) -> float:
                began = time.perf_counter()
                cycle(sim, url, STEADY, **extra)
                return time.perf_counter() - began

            timings[label] = median_of(runs, measure)
            print(f"cycle time {label}: {timings[label]:.2f}s")
        sampled = median_of(runs, lambda: baseline_sequential(sim, names[:sample]))
        per_stream = sampled / sample
        baseline = per_stream * streams  # strictly sequential: linear in the stream count
        print(f"baseline ({sample} streams measured): {sampled:.1f}s -> {baseline:.0f}s")
    lines += [
        "## Steady-state cycle time, 1,000 streams, 50 ms simulated latency",
        "",
        f"Baseline: the vendor tutorial's approach, one request per stream and endpoint "
        f"and resolution, one after another; measured on {sample} streams "
        f"({sampled:.1f} s, median of {runs}) and scaled to {streams:,} (it is strictly "
        "sequential, so its time is linear in the stream count).",
        "",
        "| approach | seconds | speed-up vs baseline |",
        "|---|---:|---:|",
        f"| baseline (sequential, per stream) | {baseline:.1f} | 1.0 |",
    ]
    for label, seconds in timings.items():
        lines.append(f"| archiver, {label} | {seconds:.2f} | {baseline / seconds:.0f}x |")
    lines += [
        "",
        "The default rate cap (20 requests/s) bounds a 1,000-stream cycle at about "
        "20 s, well inside the 15-minute cycle; raise `ARCHIVER_MAX_REQUESTS_PER_SECOND` "
        "(the vendor's own client uses 50) for larger accounts.",
        "",
    ]


# Runs `archiver ARGS...` and prints the process's own peak RSS (VmHWM) when it exits.
# getrusage() would not do: the fork that starts a child copies the parent's resident pages,
# and Linux carries that high-water mark into the child's and the parent's counters.
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


def bench_backfill(lines: list[str], runs: int) -> None:
    streams = 1000
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
                    "ARCHIVER_MAX_REQUESTS_PER_SECOND": "100",
                    "ARCHIVER_CONCURRENCY": "8",
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
                check=True,
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - began
            peak_kb = int(done.stderr.rsplit("VmHWM:", 1)[1].split()[0])
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                requests, rows = conn.execute(
                    sa.text("SELECT requests, rows_written FROM sync_runs WHERE kind = 'backfill'")
                ).one()
            engine.dispose()
            results.append((seconds, int(requests), int(rows), peak_kb / 1024))
            print(f"backfill run {run}: {done.stdout.strip()} peak {peak_kb / 1024:.0f} MB")
    finally:
        sim.terminate()
        sim.wait(10)
    seconds = statistics.median(r[0] for r in results)
    peak = max(r[3] for r in results)
    lines += [
        "## Backfill of everything the vendor holds, 1,000 streams",
        "",
        "`archiver backfill` as its own process against `archiver simulate` in another "
        "(7 days hourly and per-stream, 90 days daily, 24 months monthly), SQLite, "
        "concurrency 8, 100 requests/s. Peak RSS is the backfill process's own high-water "
        "mark (VmHWM at exit).",
        "",
        "| wall time (median) | requests | rows | peak RSS (largest run) | target |",
        "|---:|---:|---:|---:|---|",
        f"| {seconds:.1f} s | {results[0][1]:,} | {results[0][2]:,} | {peak:.0f} MB | "
        f"under 200 MB: {'met' if peak < 200 else 'MISSED'} |",
        "",
    ]


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
        "| database | operation | archiver rows/s | raw rows/s | ratio | target 0.5 |",
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
                    f"{ratio:.2f} | {'met' if ratio >= 0.5 else 'MISSED'} |"
                )
                print(f"store {dialect} {operation}: {ours_rate:,.0f} vs raw {raw_rate:,.0f}")
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS archiver_bench WITH (FORCE)"))
        admin.dispose()
    lines.append("")


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = "unknown"
    try:
        with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg = str(row[0]) if row else pg
    except psycopg.Error:
        pass
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.node()}, {os.cpu_count()} cores ({cpu}), "
        f"{memory:.0f} GiB memory, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}"
        f", PostgreSQL {pg}, SQLAlchemy {sa.__version__}, httpx {httpx.__version__}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--only",
        default="requests,cycle,backfill,store",
        help="comma-separated subset of: requests, cycle, backfill, store",
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
    if "cycle" in chosen:
        bench_cycle_time(lines, args.runs)
    if "backfill" in chosen:
        bench_backfill(lines, args.runs)
    if "store" in chosen:
        bench_store(lines, args.runs)
    args.output.write_text("\n".join(lines))
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
