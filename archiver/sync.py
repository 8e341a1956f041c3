"""One cycle: register streams, plan, fetch with bounded concurrency, store each response
in one transaction together with its watermark advance, and record the run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection, Engine

from archiver import prelude
from archiver.api.client import AnalyticsClient, FetchResult
from archiver.api.errors import ApiError
from archiver.config import Settings
from archiver.cycle_report import CycleReport, Progress, current_time
from archiver.errors import DatabaseError
from archiver.finality import Settlement
from archiver.plan import Plan, Policy, Scope, Selection, StreamEntry, make_plan
from archiver.store import state as store_state
from archiver.store.db import transaction
from archiver.streams import mark_seen, plannable, plannable_capped, update_dormancy
from archiver.vocabulary import Dataset, RunKind, RunStatus

log = logging.getLogger(__name__)

# How many names of the streams nobody asked for one answer's error line shows.
STRANGERS_SHOWN = 5

PlanHook = Callable[[Plan], None]


def plan_cycle(
    *,
    engine: Engine,
    settings: Settings,
    now: datetime,
    selection: Selection | None = None,
    extra_streams: list[StreamEntry] | None = None,
    kind: str = RunKind.SYNC,
) -> Plan:
    """The plan of a cycle at `now`, from what the database holds (nothing is written)."""
    policy = Policy.from_settings(settings)
    with transaction(engine) as conn:
        streams = _streams(conn, settings, kind) + (extra_streams or [])
        state = store_state.load_state(conn)
    return make_plan(now=now, policy=policy, streams=streams, state=state, selection=selection)


def _streams(conn: Connection, settings: Settings, kind: str) -> list[StreamEntry]:
    """The streams a cycle may plan. A sync takes a burst of new names (10,000 webhooks) a
    slice per cycle, so that its requests stay bounded and the known streams keep up; a
    backfill is asked for everything and takes everything."""
    if kind == RunKind.BACKFILL:
        return plannable(conn)
    cap = settings.max_new_streams_per_cycle
    streams, waiting = plannable_capped(conn, cap)
    for source, count in sorted(waiting.items()):
        log.warning(
            "%d new stream(s) from %s wait for a later cycle: a cycle starts at most %d new "
            "names per source (ARCHIVER_MAX_NEW_STREAMS_PER_CYCLE), the oldest first",
            count,
            source,
            cap,
        )
    return streams


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
        now = prelude.config_and_discovery(
            engine=engine, client=client, settings=settings, report=report, discover=discover
        )
        if discover and settings.publish_tokens:
            prelude.publish_tokens(engine=engine, client=client, report=report)
        # On a clock not believed, nothing is settled: no stream goes dormant, no watermark
        # moves, no gap is recorded; the rows are fetched and stored all the same. On an
        # archive with a believed past, new scopes (a stream found now) do start, at the
        # horizon of the earliest plausible now: what the vendor purges while the clock is
        # doubted becomes a recorded gap, not a silent skip. A fresh archive has nothing to
        # check a bare host clock against (a day slow, it would record a day of false gaps):
        # its scopes start with its first believed cycle.
        believed = report.belief.believed
        vetted = report.belief.vetted
        with transaction(engine) as conn:
            if believed:
                report.dormant = update_dormancy(
                    conn=conn, now=now, window=timedelta(days=settings.stream_retention_days)
                )
            state = store_state.load_state(conn)
            plan = make_plan(
                now=now,
                policy=policy,
                streams=_streams(conn, settings, kind),
                state=state,
                selection=selection,
            )
            starts = {
                s: w for s, w in plan.watermarks.items() if believed or (vetted and s not in state)
            }
            store_state.start_scopes(
                conn=conn,
                watermarks=starts,
                gaps=plan.gaps if believed else [],
                recorded_at=now,
            )
        report.gaps = plan.gaps if believed else []
        report.planned = len(plan.requests)
        if on_plan is not None:
            on_plan(plan)
        for gap in report.gaps:
            log.warning(
                "lost data: %s %s %s buckets %s..%s were purged by the vendor before they "
                "were archived final",
                gap.scope.dataset,
                gap.scope.stream or "(account)",
                gap.scope.resolution,
                gap.start.isoformat(),
                gap.stop.isoformat(),
            )
        # Requests are values: the plan never asks the same thing twice in one cycle.
        scopes = {p.request: p.scopes for p in plan.requests}
        with closing(client.fetch_all([p.request for p in plan.requests])) as results:
            for result in results:
                if stop is not None and stop.is_set():
                    break  # reported below: fewer requests answered than planned
                _store(
                    engine=engine,
                    result=result,
                    scopes=scopes[result.request],
                    policy=policy,
                    report=report,
                )
                if progress is not None:
                    progress(report)
        refused = client.access.refused_everywhere()
        if refused is not None:
            raise refused  # 403 from every endpoint asked (discovery, tokens, analytics)
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
                    error=fatal or (report.errors[0] if report.errors else report.clock_problem),
                    clock_skew_seconds=None if report.skew is None else report.skew.total_seconds(),
                    clock_problem=report.clock_problem,
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
    if result.strangers:
        # Never stored (nobody asked, and its batch may be another's): reported, one line per
        # answer however many it holds, and the requested streams are judged each on their own.
        stranger = _strangers(request.describe(), result.strangers)
        report.errors.append(stranger)
        log.error("%s", stranger)
    if result.error is not None:
        _fail(engine, report, scopes, str(result.error), result.fetched_at)
        return
    settlement = _settlement(result, policy, report)
    for row in result.rows:
        row["fetched_at"] = settlement.fetched_at
        row["is_final"] = settlement.final(row["period_start"])
    good = tuple(s for s in scopes if s.stream not in result.failed)
    broken = [s for s in scopes if s.stream in result.failed]
    try:
        with transaction(engine) as conn:
            written = store_state.store_response(
                conn=conn,
                dataset=request.endpoint.dataset,
                scopes=good,
                rows=result.rows,
                settlement=settlement,
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


def _settlement(result: FetchResult, policy: Policy, report: CycleReport) -> Settlement:
    """What this answer may settle: only on its own `Date`, when the cycle's believed clock
    agrees with it; otherwise nothing, and its rows are stamped with the cycle's clock."""
    request = result.request
    belief = report.belief
    at, problem = belief.settle_time(result.reading)
    if problem is not None:
        if report.clock_problem is None:
            report.clock_problem = problem
        log.warning("%s: %s", request.describe(), problem)
    if at is not None:
        return Settlement(policy, request.resolution, request.start, request.stop, at)
    stamp = result.fetched_at if result.reading is None else belief.now(result.reading.host)
    return Settlement(policy, request.resolution, request.start, request.stop, stamp, settles=False)


def _fail(
    engine: Engine, report: CycleReport, scopes: tuple[Scope, ...], error: str, at: datetime
) -> None:
    report.failed += 1
    report.errors.append(error)
    log.error("request failed (will retry next cycle): %s", error)
    # If even this fails, the database itself is gone: that ends the cycle.
    with transaction(engine) as conn:
        store_state.record_failure(conn=conn, scopes=scopes, error=error, at=at)


def _strangers(what: str, names: list[str]) -> str:
    """One line for the streams an answer holds that nobody asked for: the count, a few names."""
    if len(names) == 1:
        return f"{what}: the answer holds stream {names[0]!r}, which was not asked for (not stored)"
    shown = ", ".join(repr(name) for name in names[:STRANGERS_SHOWN])
    more = f" and {len(names) - STRANGERS_SHOWN} more" if len(names) > STRANGERS_SHOWN else ""
    return (
        f"{what}: the answer holds {len(names)} streams that were not asked for "
        f"(not stored): {shown}{more}"
    )
