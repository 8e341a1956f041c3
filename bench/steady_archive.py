"""The archives `bench.steady` measures: every name tracked, every scope where the previous
steady cycle left it; a fresh copy each run, with or without planner statistics."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import sqlalchemy as sa

from archiver.store import db
from bench.common import PG_URL, WORK
from bench.cycles import synthetic_steady_state

ADMIN = PG_URL.replace("postgresql+psycopg", "postgresql")
PG_DATABASE = "bench_steady"


def pg(statement: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(statement.encode())


def pg_url(name: str) -> str:
    return str(sa.make_url(PG_URL).set(database=name))


def template(kind: str, names: list[str]) -> str:
    """A prepared archive: every name tracked, every scope at its steady-state watermark (as
    the previous cycle, 15 minutes earlier, left it). Nothing here takes statistics; whatever
    the archiver's own code takes, it takes."""
    if kind == "sqlite":
        url = f"sqlite:///{WORK / 'steady-template.db'}"
    else:
        pg(f"DROP DATABASE IF EXISTS {PG_DATABASE}_template")
        pg(f"CREATE DATABASE {PG_DATABASE}_template")
        url = pg_url(f"{PG_DATABASE}_template")
    synthetic_steady_state(url, names)
    return url


def copy(kind: str, template: str, old: bool) -> str:
    """A fresh copy of the template; an old archive's has statistics on every table."""
    if kind == "sqlite":
        path = WORK / "steady.db"
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        shutil.copyfile(sa.make_url(template).database or "", path)
        url = f"sqlite:///{path}"
    else:
        pg(f"DROP DATABASE IF EXISTS {PG_DATABASE}")
        pg(f"CREATE DATABASE {PG_DATABASE} TEMPLATE {PG_DATABASE}_template")
        url = pg_url(PG_DATABASE)
    if old:
        engine = db.make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        engine.dispose()
    return url


def names(streams: int) -> list[str]:
    from archiver.simulator import SimConfig, Simulator

    with Simulator(SimConfig(streams=streams, seed=1)) as probe:
        return [s.name for s in probe.traffic.streams]
