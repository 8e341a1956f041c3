"""`archiver demo`: a simulated account archived into demo.db, in under a minute."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from archiver.api.client import AnalyticsClient
from archiver.config import get_settings
from archiver.cycle.sync import run_cycle
from archiver.simulator import SimConfig, Simulator
from archiver.store import db
from archiver.vocabulary import RunKind

DEMO_TOKEN = "demo-token"


def _bar(done: int, total: int, rows: int, width: int = 30) -> str:
    filled = width * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} cycles, {rows:,} rows"


def _human(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def run_demo(folder: Path, *, streams: int = 5, days: int = 2, out: Callable[[str], None]) -> Path:
    """Archive a simulated account: a backfill, then a cycle every simulated hour."""
    path = folder / "demo.db"
    for stale in (path, path.with_name("demo.db-wal"), path.with_name("demo.db-shm")):
        stale.unlink(missing_ok=True)
    end = datetime.now(UTC).replace(minute=2, second=0, microsecond=0)
    start = end - timedelta(days=days)
    config = SimConfig(streams=streams, seed=42, origin=start - timedelta(days=30))
    moments = [start + timedelta(hours=h) for h in range(days * 24 + 1)]
    tty = sys.stderr.isatty()
    with Simulator(config, token=DEMO_TOKEN, start=start) as sim:
        names = [s.name for s in sim.traffic.streams]
        out(f"simulator on {sim.url}: {streams} streams ({', '.join(names)})")
        out(
            f"archiving into {path}: a backfill at {start:%Y-%m-%d %H:%M} UTC, then a cycle "
            f"every simulated hour until {end:%Y-%m-%d %H:%M} UTC"
        )
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        rows = 0
        try:
            for done, moment in enumerate(moments, start=1):
                sim.set_now(moment)
                settings = get_settings(
                    database_url=f"sqlite:///{path}",
                    api_base_url=sim.url,
                    api_token=DEMO_TOKEN,
                    now=moment,
                    streams=names,
                    discovery=True,
                    concurrency=4,
                    max_requests_per_second=500.0,
                )
                with AnalyticsClient.from_options(settings.client_options()) as client:
                    report = run_cycle(
                        engine=engine,
                        client=client,
                        settings=settings,
                        kind=RunKind.BACKFILL if done == 1 else RunKind.SYNC,
                    )
                rows += report.rows
                if tty:
                    sys.stderr.write("\r" + _bar(done, len(moments), rows))
                    sys.stderr.flush()
                elif done == 1 or done % 12 == 0 or done == len(moments):
                    out(_bar(done, len(moments), rows))
            if tty:
                sys.stderr.write("\n")
            _summary(engine, out)
        finally:
            engine.dispose()
    return path


def _summary(engine: sa.Engine, out: Callable[[str], None]) -> None:
    with engine.connect() as conn:
        totals = conn.execute(
            sa.text(
                "SELECT stream_name, COUNT(*) AS days, SUM(bytes_in), SUM(bytes_out) "
                "FROM stream_daily_usage GROUP BY stream_name ORDER BY SUM(bytes_out) DESC"
            )
        ).all()
        countries = conn.execute(
            sa.text(
                "SELECT stream_name, country, SUM(views) FROM stream_geo_usage "
                "WHERE resolution = 'Hour' GROUP BY stream_name, country"
            )
        ).all()
    top: dict[str, list[tuple[int, str]]] = {}
    for name, country, views in countries:
        top.setdefault(name, []).append((int(views), country))
    out("")
    out(f"{'stream':<14} {'days':>4} {'bytes in':>12} {'bytes out':>12}  top countries (views)")
    for name, days, bytes_in, bytes_out in totals:
        best = ", ".join(f"{c} {v:,}" for v, c in sorted(top.get(name, []), reverse=True)[:3])
        out(
            f"{name:<14} {days:>4} {_human(int(bytes_in)):>12} {_human(int(bytes_out)):>12}  {best}"
        )
    out("")
    out("Next steps:")
    out(
        "  archiver status                                 # with ARCHIVER_DATABASE_URL=sqlite:///demo.db"
    )
    out("  archiver report --by day --from 2000-01-01      # account totals per day, same setting")
    out('  sqlite3 demo.db "SELECT * FROM stream_monthly_usage"   # plain SQL (README: Querying)')
    out("Archive your real account: put ARCHIVER_API_TOKEN=<your API secret> in .env, then run")
    out("  archiver backfill   # saves everything the vendor still holds")
    out("  archiver run        # keeps it saved, every 15 minutes")
