"""One cycle: register streams, plan, fetch with bounded concurrency, store each response
in the same transaction as its watermark advance, and record the run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection, Engine

from archiver.api.client import AnalyticsClient
from archiver.api.errors import ApiError
from archiver.config import Settings
from archiver.cycle import batch, day_check, feeds, prelude, viewers
from archiver.cycle.report import CycleReport, Progress, current_time
from archiver.cycle.streams import plannable, plannable_capped, update_dormancy
from archiver.errors import DatabaseError
from archiver.rules.plan import Plan, Policy, Selection, StreamEntry, make_plan
from archiver.store import state as store_state
from archiver.store.db import transaction
from archiver.vocabulary import RunKind, RunStatus

log = logging.getLogger(__name__)

PlanHook = Callable[[Plan], None]


def plan_cycle(
    *,
    engine: Engine,
    settings: Settings,
    now: datetime,
    selection: Selection | None = None,
    extra_streams: list[StreamEntry] | None = None,
    kind: RunKind = RunKind.SYNC,
) -> Plan:
    """The plan of a cycle at `now`, from what the database holds (nothing is written)."""
    policy = Policy.from_settings(settings)
    with transaction(engine) as conn:
        streams = _streams(conn, settings, kind) + (extra_streams or [])
        state = store_state.load_state(conn)
    return make_plan(now=now, policy=policy, streams=streams, state=state, selection=selection)


def _streams(conn: Connection, settings: Settings, kind: RunKind) -> list[StreamEntry]:
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
    kind: RunKind = RunKind.SYNC,
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
    report = CycleReport(kind=kind, now=current_time(settings))
    with recorded_run(engine, settings, report):
        now = prelude.config_and_discovery(
            engine=engine, client=client, settings=settings, report=report, discover=discover
        )
        if discover and settings.publish_tokens:
            prelude.publish_tokens(engine=engine, client=client, report=report)
        if discover and settings.feeds:
            feeds.feed_source(engine=engine, client=client, settings=settings, report=report)
        if discover and settings.viewers:
            viewers.viewer_stats(engine=engine, client=client, settings=settings, report=report)
        plan = _start(engine, settings, report, now, selection)
        if on_plan is not None:
            on_plan(plan)
        _log_gaps(report)
        _fetch_and_store(engine, client, settings, plan, report, progress, stop)
        refused = client.access.refused_everywhere()
        if refused is not None:
            raise refused  # 403 from every endpoint asked (discovery, tokens, analytics)
        interrupted = stop is not None and stop.is_set() and report.requests < report.planned
        if interrupted and "interrupted: shutting down" not in report.errors:
            report.errors.append("interrupted: shutting down")
    return report


def _fetch_and_store(
    engine: Engine,
    client: AnalyticsClient,
    settings: Settings,
    plan: Plan,
    report: CycleReport,
    progress: Progress | None,
    stop: threading.Event | None,
) -> None:
    """Every planned request, a few at a time; the answers stored as they arrive, those
    ready together in one transaction (`batch.MOST` at most)."""
    # Requests are values: the plan never asks the same thing twice in one cycle.
    scopes = {p.request: p.scopes for p in plan.requests}
    policy = Policy.from_settings(settings)
    # The account's Month answers come first: Day answers are judged against their month.
    for wave in day_check.waves([p.request for p in plan.requests], stop):
        with closing(client.fetch_batches(wave, batch.MOST)) as ready:
            for results in ready:
                if stop is not None and stop.is_set():
                    break  # reported by the caller: fewer requests answered than planned
                batch.store_answers(
                    engine=engine,
                    results=results,
                    scopes=scopes,
                    policy=policy,
                    report=report,
                    progress=progress,
                )


@contextmanager
def recorded_run(engine: Engine, settings: Settings, report: CycleReport) -> Iterator[None]:
    """The cycle's row in the run history: opened as it starts, closed with its totals however
    it ends. An error that ends the cycle is recorded (an ApiError by its text alone, others
    with their type) and raised on."""
    with transaction(engine) as conn:
        run_id = store_state.start_run(conn=conn, kind=report.kind, started_at=report.now)
    fatal: str | None = None
    try:
        yield
    except Exception as exc:
        fatal = str(exc) if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
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
        except DatabaseError as exc:  # the server went away: one line, as for every cycle
            log.error("could not record the end of run %d: %s", run_id, exc)
        except Exception:
            log.exception("could not record the end of run %d", run_id)


def _start(
    engine: Engine,
    settings: Settings,
    report: CycleReport,
    now: datetime,
    selection: Selection | None,
) -> Plan:
    """Dormancy, the plan, new scopes' watermarks and the gaps, in one transaction.

    On a clock not believed, nothing is settled: no stream goes dormant, no watermark
    moves, no gap is recorded; the rows are fetched and stored all the same. On an
    archive with a believed past, new scopes (a stream found now) do start, at the
    horizon of the earliest plausible now: what the vendor purges while the clock is
    doubted becomes a recorded gap, not a silent skip. A fresh archive has nothing to
    check a bare host clock against (a day slow, it would record a day of false gaps):
    its scopes start with its first believed cycle.
    """
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
            policy=Policy.from_settings(settings),
            streams=_streams(conn, settings, report.kind),
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
    return plan


def _log_gaps(report: CycleReport) -> None:
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
