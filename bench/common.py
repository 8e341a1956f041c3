"""What every benchmark shares: its work folder, moments, simulator settings and the machine."""

from __future__ import annotations

import importlib.util
import os
import platform
import statistics
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa

from archiver.api.client import AnalyticsClient
from archiver.config import get_settings
from archiver.cycle.sync import run_cycle
from archiver.simulator import Simulator
from archiver.store import db

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


def migration(file: str) -> Any:
    """A migration module of `migrations/versions`, loaded by path (it is not a package)."""
    path = Path(__file__).resolve().parent.parent / "migrations" / "versions" / file
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
