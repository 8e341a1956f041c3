"""The start of a cycle: the vendor's clock, then stream names from the settings, discovery
and publish tokens. A failing source costs only its own names, never the cycle (a refused
secret or no server at the API URL ends it: every request would fail the same way)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient
from archiver.api.errors import CYCLE_ENDING, ApiError
from archiver.config import Settings
from archiver.cycle.report import CycleReport
from archiver.cycle.streams import add_streams, discover_names
from archiver.cycle.tokens import save_tokens
from archiver.errors import ArchiverError, DatabaseError
from archiver.rules.clock_trust import History, believe
from archiver.rules.reading import CLOCK_TOLERANCE
from archiver.store.clock_runs import clock_history
from archiver.store.db import transaction
from archiver.vocabulary import StreamSource

log = logging.getLogger(__name__)


def config_and_discovery(
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
        except CYCLE_ENDING:
            raise  # a refused secret (401) or no server at the URL: every request would fail
        except ArchiverError as exc:
            # Of any other kind (timeouts, a 403 on monitoring, a broken listing): the cycle
            # goes on with the names it knows. A monitoring outage must not cost the
            # per-stream data of the streams already tracked.
            report.errors.append(f"discovery: {exc}")
            log.error("stream discovery failed (going on with the known streams): %s", exc)
    now = vendor_now(engine, client, report)
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


def vendor_now(engine: Engine, client: AnalyticsClient, report: CycleReport) -> datetime:
    """The cycle's now, and whether its clock is believed (`report.belief`).

    Read from the answers so far (discovery's), or from one small request. A host clock
    ahead would record gaps for data the vendor still holds; one behind would ask for
    buckets the vendor has purged; a wrong `Date` would do either: see clock_trust.py.
    Not believed, the now is the earliest plausible one (`Belief.fallback`), to plan and
    stamp rows with, never to settle anything on.
    """
    with transaction(engine) as conn:
        history = clock_history(conn)
    return judge_clock(client, report, history)


def judge_clock(client: AnalyticsClient, report: CycleReport, history: History) -> datetime:
    """As `vendor_now`, with the earlier cycles' `history` already read (the dry run's)."""
    readings = client.take_readings()
    if not readings:
        client.probe_clock()
        readings = client.take_readings()
    belief = believe(readings, history, report.now)
    report.belief = belief
    report.skew = belief.skew
    skew = belief.skew
    if belief.problem is not None:
        report.clock_problem = belief.problem
        log.warning(
            "the vendor's clock is not believed, nothing is settled this cycle: %s",
            belief.problem,
        )
    elif skew is not None and abs(skew) > CLOCK_TOLERANCE:
        log.warning(
            "the vendor's clock differs from ours by %+.0f s: judging time by the vendor's",
            skew.total_seconds(),
        )
    report.now = belief.now(report.now)
    return report.now


def publish_tokens(*, engine: Engine, client: AnalyticsClient, report: CycleReport) -> None:
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
