"""One cycle: register streams, plan, fetch with bounded concurrency, store each response
in one transaction together with its watermark advance, and record the run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient, FetchResult
from archiver.api.clock import CLOCK_TOLERANCE
from archiver.api.errors import ApiError
from archiver.config import Settings
from archiver.errors import ArchiverError, DatabaseError
from archiver.plan import Gap, Plan, Policy, Scope, Selection, StreamEntry, make_plan
from archiver.store import state as store_state
from archiver.store.db import transaction
from archiver.streams import (
    add_streams,
    discover_names,
    mark_seen,
    plannable,
    update_dormancy,
)
from archiver.tokens import save_tokens
from archiver.vocabulary import Dataset, RunKind, RunStatus, StreamSource

log = logging.getLogger(__name__)

Progress = Callable[["CycleReport"], None]
PlanHook = Callable[[Plan], None]


@dataclass
class CycleReport:
    """What one cycle did."""

    kind: str
    now: datetime
    planned: int = 0
    requests: int = 0
    failed: int = 0
    rows: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    discovered: list[str] = field(default_factory=list)
    dormant: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0
    # The vendor's clock minus ours (its `Date` header); None: not measured.
    skew: timedelta | None = None

    @property
    def ok(self) -> bool:
        """True when every planned request (and discovery) succeeded."""
        return not self.errors

    def summary(self) -> str:
        """One line for logs and the terminal."""
        text = (
            f"{self.kind}: {self.requests - self.failed}/{self.planned} requests ok, "
            f"{self.rows} rows, {len(self.gaps)} gaps, {len(self.discovered)} new streams, "
            f"{self.duration:.1f}s"
        )
        if self.skew is not None and abs(self.skew) > CLOCK_TOLERANCE:
            text += f", vendor clock {self.skew.total_seconds():+.0f}s from ours"
        if self.errors:
            text += f", {len(self.errors)} errors (first: {self.errors[0]})"
        return text


def current_time(settings: Settings) -> datetime:
    """`ARCHIVER_NOW` if set, else the wall clock."""
    return settings.now or datetime.now(UTC)


def _config_and_discovery(
    *,
    engine: Engine,
    client: AnalyticsClient,
    settings: Settings,
    report: CycleReport,
    discover: bool,
) -> datetime:
    """Register configured and discovered names; returns the cycle's now (the vendor's).

    Discovery's answer tells the vendor's time; without it one small request does, before
    any name is registered or any request planned.
    """
    found: list[str] | None = None
    if discover and settings.discovery:
        try:
            found = discover_names(client, settings.discovery_pattern)
        except ArchiverError as exc:
            # Of any kind (timeouts, a refused secret, a broken listing): the cycle goes on
            # with the names it knows. A monitoring outage must not cost the per-stream data
            # of the streams already tracked.
            report.errors.append(f"discovery: {exc}")
            log.error("stream discovery failed (going on with the known streams): %s", exc)
    now = _vendor_now(client, report)
    with transaction(engine) as conn:
        added = add_streams(conn=conn, names=settings.streams, source=StreamSource.CONFIG, now=now)
    report.refused.update(added.refused)
    if found is None:
        return now
    try:
        with transaction(engine) as conn:
            added = add_streams(
                conn=conn, names=found, source=StreamSource.DISCOVERED, now=now, seen=True
            )
    except DatabaseError as exc:
        report.errors.append(f"discovery: {exc}")
        log.error("could not register discovered streams (going on without them): %s", exc)
        return now
    report.discovered = added.added
    report.refused.update(added.refused)
    for name in added.added:
        log.info("discovered stream %r", name)
    for name in added.woken:
        log.info("stream %r is live again; tracking it every cycle", name)
    return now


def _vendor_now(client: AnalyticsClient, report: CycleReport) -> datetime:
    """The cycle's now: the vendor's (its `Date` header) when our clock disagrees with it.

    Measured by the cycle's first answer, or by one small request. A host
    clock ahead would record gaps for data the vendor still holds; one behind would ask
    for buckets the vendor has purged (they read back as zeros).
    """
    if client.skew is None:
        client.probe_clock()
    skew = client.skew
    report.skew = skew
    if skew is None:
        log.warning("the vendor's clock is unknown (no Date header): using ours")
        return report.now
    if abs(skew) <= CLOCK_TOLERANCE:
        return report.now
    log.warning(
        "the vendor's clock differs from ours by %+.0f s: judging time by the vendor's",
        skew.total_seconds(),
    )
    report.now = report.now + skew
    return report.now


def _publish_tokens(*, engine: Engine, client: AnalyticsClient, report: CycleReport) -> None:
    """Track the exact names of the account's publish tokens; keep their regex patterns.

    A failure here costs only this source for this cycle: the rest of the cycle goes on.
    """
    try:
        tokens = client.publish_tokens()
    except ApiError as exc:
        report.errors.append(f"publish tokens: {exc}")
        log.error("reading publish tokens failed: %s", exc)
        return
    with transaction(engine) as conn:
        added = save_tokens(conn=conn, tokens=tokens, now=report.now)
    report.refused.update(added.refused)
    for name in added.added:
        log.info("tracking stream %r: an exact name of a publish token", name)
    report.discovered += added.added


def plan_cycle(
    *,
    engine: Engine,
    settings: Settings,
    now: datetime,
    selection: Selection | None = None,
    extra_streams: list[StreamEntry] | None = None,
) -> Plan:
    """The plan of a cycle at `now`, from what the database holds (nothing is written)."""
    policy = Policy.from_settings(settings)
    with transaction(engine) as conn:
        streams = plannable(conn) + (extra_streams or [])
        state = store_state.load_state(conn)
    return make_plan(now=now, policy=policy, streams=streams, state=state, selection=selection)


def run_cycle(
    *,
    engine: Engine,
    client: AnalyticsClient,
    settings: Settings,
    kind: str = RunKind.SYNC,
    selection: Selection | None = None,
    discover: bool = True,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    on_plan: PlanHook | None = None,
) -> CycleReport:
    """Run one cycle; failed requests are reported and retried by the next cycle.

    Setting `stop` ends the cycle after the transaction in flight; what was not stored
    is fetched again by the next cycle.
    """
    now = current_time(settings)
    policy = Policy.from_settings(settings)
    report = CycleReport(kind=kind, now=now)
    with transaction(engine) as conn:
        run_id = store_state.start_run(conn=conn, kind=kind, started_at=now)
    fatal: str | None = None
    try:
        now = _config_and_discovery(
            engine=engine, client=client, settings=settings, report=report, discover=discover
        )
        if discover and settings.publish_tokens:
            _publish_tokens(engine=engine, client=client, report=report)
        with transaction(engine) as conn:
            report.dormant = update_dormancy(
                conn=conn, now=now, window=timedelta(days=settings.stream_retention_days)
            )
            plan = make_plan(
                now=now,
                policy=policy,
                streams=plannable(conn),
                state=store_state.load_state(conn),
                selection=selection,
            )
            store_state.start_scopes(
                conn=conn, watermarks=plan.watermarks, gaps=plan.gaps, recorded_at=now
            )
        report.gaps = plan.gaps
        report.planned = len(plan.requests)
        if on_plan is not None:
            on_plan(plan)
        for gap in plan.gaps:
            log.warning(
                "lost data: %s %s %s buckets %s..%s were purged by the vendor before they "
                "were archived final",
                gap.scope.dataset,
                gap.scope.stream or "(account)",
                gap.scope.resolution,
                gap.start.isoformat(),
                gap.stop.isoformat(),
            )
        scopes = {id(p.request): p.scopes for p in plan.requests}
        with closing(client.fetch_all([p.request for p in plan.requests])) as results:
            for result in results:
                if stop is not None and stop.is_set():
                    report.errors.append("interrupted: shutting down")
                    break
                _store(
                    engine=engine,
                    result=result,
                    scopes=scopes[id(result.request)],
                    policy=policy,
                    report=report,
                )
                if progress is not None:
                    progress(report)
        interrupted = stop is not None and stop.is_set() and report.requests < report.planned
        if interrupted and "interrupted: shutting down" not in report.errors:
            report.errors.append("interrupted: shutting down")
    except ApiError as exc:
        fatal = str(exc)
        raise
    except Exception as exc:
        fatal = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.duration = time.monotonic() - report.started
        status = RunStatus.FAILED if fatal else (RunStatus.OK if report.ok else RunStatus.PARTIAL)
        try:
            with transaction(engine) as conn:
                store_state.finish_run(
                    conn=conn,
                    run_id=run_id,
                    finished_at=current_time(settings),
                    status=status,
                    requests=report.requests,
                    failed_requests=report.failed,
                    rows_written=report.rows,
                    gaps=len(report.gaps),
                    error=fatal or (report.errors[0] if report.errors else None),
                    clock_skew_seconds=None if report.skew is None else report.skew.total_seconds(),
                )
        except Exception:
            log.exception("could not record the end of run %d", run_id)
    return report


def _store(
    *,
    engine: Engine,
    result: FetchResult,
    scopes: tuple[Scope, ...],
    policy: Policy,
    report: CycleReport,
) -> None:
    request = result.request
    report.requests += 1
    if result.error is not None:
        _fail(engine, report, scopes, str(result.error), result.fetched_at)
        return
    good = tuple(s for s in scopes if s.stream not in result.failed)
    broken = [s for s in scopes if s.stream in result.failed]
    try:
        with transaction(engine) as conn:
            written = store_state.store_response(
                conn=conn,
                dataset=request.endpoint.dataset,
                resolution=request.resolution,
                chunk_start=request.start,
                chunk_stop=request.stop,
                scopes=good,
                rows=result.rows,
                fetched_at=result.fetched_at,
                policy=policy,
            )
            if request.endpoint.dataset == Dataset.STREAM_USAGE and result.rows:
                seen: dict[str, datetime] = {}
                for row in result.rows:
                    name = row["stream_name"]
                    if name not in seen or seen[name] < row["period_start"]:
                        seen[name] = row["period_start"]
                mark_seen(conn=conn, last_seen=seen)
            for scope in broken:
                store_state.record_failure(
                    conn=conn,
                    scopes=[scope],
                    error=result.failed[scope.stream],
                    at=result.fetched_at,
                )
    except DatabaseError as exc:
        # One response the database refuses must not stop the others: its scopes keep
        # their watermarks and the next cycle asks again.
        _fail(engine, report, scopes, f"{request.describe()}: {exc}", result.fetched_at)
        return
    if broken:
        report.failed += 1
        for scope in broken:
            report.errors.append(result.failed[scope.stream])
            log.error("broken answer (will retry next cycle): %s", result.failed[scope.stream])
    report.rows += written.rows
    table = request.endpoint.table
    report.rows_by_table[table] = report.rows_by_table.get(table, 0) + written.rows


def _fail(
    engine: Engine, report: CycleReport, scopes: tuple[Scope, ...], error: str, at: datetime
) -> None:
    report.failed += 1
    report.errors.append(error)
    log.error("request failed (will retry next cycle): %s", error)
    # If even this fails, the database itself is gone: that ends the cycle.
    with transaction(engine) as conn:
        store_state.record_failure(conn=conn, scopes=scopes, error=error, at=at)
