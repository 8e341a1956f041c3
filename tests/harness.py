"""End-to-end harness: the real sync engine against the simulator over loopback HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient
from archiver.config import Settings, get_settings
from archiver.cycle.report import CycleReport
from archiver.cycle.sync import PlanHook, run_cycle
from archiver.datasets import ENDPOINTS
from archiver.rules.plan import Policy, Selection
from archiver.simulator import Simulator
from archiver.store.tables import USAGE_TABLES, stream_sessions, sync_gaps, tracked_streams
from archiver.timeutil import Resolution, format_iso
from archiver.vocabulary import RunKind
from tests.simhelpers import TOKEN


@dataclass
class Harness:
    """Drives cycles at chosen simulated times; the simulator's clock follows."""

    sim: Simulator
    engine: Engine
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, now: datetime) -> Settings:
        values: dict[str, Any] = {
            "database_url": str(self.engine.url.render_as_string(hide_password=False)),
            "api_base_url": self.sim.url,
            "api_token": TOKEN,
            "now": now,
            "concurrency": 4,
            "max_requests_per_second": 1000.0,
            "backoff_base_seconds": 0.001,
            "max_backoff_seconds": 0.01,
        }
        values.update(self.overrides)
        return get_settings(**values)

    def cycle(
        self,
        now: datetime,
        *,
        kind: RunKind = RunKind.SYNC,
        selection: Selection | None = None,
        host: datetime | None = None,
        on_plan: PlanHook | None = None,
    ) -> CycleReport:
        """One cycle at the vendor's time `now`; the host clock says `host` (default `now`);
        `on_plan` sees the plan before any analytics request goes out."""
        self.sim.set_now(now)
        settings = self.settings(host or now)
        with AnalyticsClient.from_options(
            settings.client_options(), sleep=lambda _: None
        ) as client:
            return run_cycle(
                engine=self.engine,
                client=client,
                settings=settings,
                kind=kind,
                selection=selection,
                on_plan=on_plan,
            )


def tracked_names(engine: Engine) -> set[str]:
    return set(tracked_since(engine))


def tracked_since(engine: Engine) -> dict[str, datetime]:
    """Reportable tracked streams and when each was first tracked."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(tracked_streams.c.stream_name, tracked_streams.c.added_at).where(
                tracked_streams.c.status != "refused"
            )
        )
        return {row.stream_name: row.added_at for row in rows}


def archived(
    engine: Engine, dataset: str, resolution: Resolution, start: datetime, stop: datetime
) -> list[dict[str, Any]]:
    """Archive rows of one dataset in `[start, stop)`, as comparable dicts."""
    table = USAGE_TABLES[dataset]
    query = sa.select(table).where(
        table.c.resolution == resolution.value,
        table.c.period_start >= start,
        table.c.period_start < stop,
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["period_start"] = format_iso(row["period_start"])
    return rows


def truth(
    http: httpx.Client, dataset: str, resolution: Resolution, start: datetime, stop: datetime
) -> list[dict[str, Any]]:
    response = http.get(
        "/_sim/truth",
        params={
            "dataset": dataset,
            "resolution": resolution.value,
            "start": format_iso(start),
            "stop": format_iso(stop),
        },
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


def lost_in_gaps(engine: Engine, http: httpx.Client) -> list[str]:
    """Recorded gaps over buckets the vendor held traffic in. A zero read inside the retention
    margin is recorded as a gap (it may be a purge): over a quiet bucket that costs nothing,
    so a clean run may hold such gaps, but none over traffic."""
    with engine.connect() as conn:
        gaps = conn.execute(sa.select(sync_gaps)).all()
    lost = []
    for gap in gaps:
        rows = truth(http, gap.dataset, Resolution(gap.resolution), gap.gap_start, gap.gap_stop)
        if any(r.get("stream_name", "") == gap.stream_name for r in rows):
            lost.append(f"{gap.dataset} {gap.stream_name!r} {gap.resolution} {gap.gap_start}")
    return lost


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    # The bucket key of every dataset: its stream, start and its part (country, tracking ID).
    return (
        row.get("stream_name", ""),
        row["period_start"],
        row.get("country", ""),
        row.get("tracking_id", ""),
    )


@dataclass
class Verdict:
    """Per dataset and resolution: truth buckets, archived, equal, missing, extra."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def compare_with_truth(
    *,
    engine: Engine,
    http: httpx.Client,
    first_now: datetime,
    last_now: datetime,
    policy: Policy | None = None,
) -> Verdict:
    """Every bucket the vendor held at `first_now` and final by `last_now` equals the truth.

    Stream datasets are compared for the tracked streams, each from what the vendor held
    when it was first tracked; the caller checks that every stream with traffic was tracked.
    """
    policy = policy or Policy()
    verdict = Verdict()
    since = tracked_since(engine)
    for endpoint in ENDPOINTS:
        for resolution in endpoint.resolutions:
            start = policy.reach(endpoint, resolution, first_now)
            stop = policy.first_unfinal(resolution, last_now)
            expected = {}
            for row in truth(http, endpoint.dataset, resolution, start, stop):
                if endpoint.takes_streams:
                    added = since.get(row["stream_name"])
                    first = added and policy.reach(endpoint, resolution, max(added, first_now))
                    if first is None or row["period_start"] < format_iso(first):
                        continue
                expected[_key(row)] = row
            got = archived(engine, endpoint.dataset, resolution, start, stop)
            not_final = [r for r in got if not r["is_final"]]
            have = {
                _key(r): {k: v for k, v in r.items() if k not in ("fetched_at", "is_final")}
                for r in got
            }
            equal = sum(1 for k, v in expected.items() if have.get(k) == v)
            missing = [k for k in expected if k not in have]
            extra = [k for k in have if k not in expected]
            wrong = [k for k in expected if k in have and have[k] != expected[k]]
            verdict.lines.append(
                f"{endpoint.dataset:<18} {resolution.value:<5} truth={len(expected):>6} "
                f"archived={len(have):>6} equal={equal:>6} missing={len(missing)} "
                f"extra={len(extra)} wrong={len(wrong)} not_final={len(not_final)}"
            )
            for label, items in (
                ("missing", missing),
                ("extra", extra),
                ("wrong", wrong),
                ("not final", not_final),
            ):
                if items:
                    verdict.problems.append(
                        f"{endpoint.dataset} {resolution}: {len(items)} {label}, e.g. {items[0]}"
                    )
    return verdict


def quarter_hours(start: datetime, stop: datetime, *, minute: int = 2) -> list[datetime]:
    """Cycle times just after each vendor refresh in `[start, stop)`."""
    moment = start.replace(minute=minute, second=0, microsecond=0)
    times = []
    while moment < stop:
        if moment >= start:
            times.append(moment)
        moment += timedelta(minutes=15)
    return times


def table_dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for name, t in USAGE_TABLES.items()
        }


def archived_sessions(engine: Engine) -> list[tuple[Any, ...]]:
    """`stream_sessions` as (stream_name, started, ended, active, duration_seconds) tuples,
    times as ISO text, by start."""
    t = stream_sessions
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.started, t.c.stream_name, t.c.feed_ordinal))
        return [
            (
                r.stream_name,
                format_iso(r.started),
                None if r.ended is None else format_iso(r.ended),
                r.active,
                r.duration_seconds,
            )
            for r in rows
        ]


def session_days_problems(engine: Engine) -> list[str]:
    """Where `stream_daily_sessions` differs from each stream's day counted second by second
    from the archived sessions (a running feed up to the read that last saw it)."""
    t = stream_sessions
    live: dict[tuple[str, str], set[int]] = {}
    started: dict[tuple[str, str], int] = {}
    with engine.connect() as conn:
        for r in conn.execute(sa.select(t.c.stream_name, t.c.started, t.c.ended, t.c.fetched_at)):
            started[(r[0], r[1].strftime("%F"))] = started.get((r[0], r[1].strftime("%F")), 0) + 1
            for second in range(int(r[1].timestamp()), int((r[2] or r[3]).timestamp())):
                day = datetime.fromtimestamp(second, UTC).strftime("%F")
                live.setdefault((r[0], day), set()).add(second)
        view = conn.execute(
            sa.text(
                "SELECT stream_name, day, sessions, publishing_seconds FROM stream_daily_sessions"
            )
        )
        got = {(r[0], str(r[1])[:10]): (r[2], r[3]) for r in view}  # text or datetime
    want = {k: (started.get(k, 0), len(live.get(k, ()))) for k in set(live) | set(started)}
    wrong = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    return [
        f"stream_daily_sessions: {len(wrong)} days differ, e.g. {k}: archive {got.get(k)} "
        f"counted {want.get(k)}"
        for k in wrong[:1]
    ]


def truth_sessions(http: httpx.Client, retained_at: datetime) -> list[tuple[Any, ...]]:
    """The simulator's `stream_sessions`: every feed the vendor still held at `retained_at`
    (a first read's time) or started since, as `archived_sessions` shows them."""
    params = {"dataset": "stream_sessions", "start": "2000-01-01", "stop": "2100-01-01"}
    rows = http.get("/_sim/truth", params=params).json()["rows"]
    line = format_iso(retained_at - timedelta(days=30))
    found = []
    for r in rows:
        if r["ended"] is not None and r["ended"] < line:
            continue  # purged before the first read
        started = datetime.fromisoformat(r["started"].replace("Z", "+00:00"))
        ended = r["ended"] and datetime.fromisoformat(r["ended"].replace("Z", "+00:00"))
        duration = None if not ended else int((ended - started).total_seconds())
        found.append((r["stream_name"], r["started"], r["ended"], r["active"], duration))
    return sorted(found, key=lambda f: (f[1], f[0]))
