"""One answer into the archive: settled, stored with its watermarks, noted, counted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from archiver.api.client import FetchResult
from archiver.cycle import day_check
from archiver.cycle.report import CycleReport
from archiver.cycle.streams import mark_seen
from archiver.errors import DatabaseError
from archiver.rules.clock_trust import AGREEMENT
from archiver.rules.finality import Settlement
from archiver.rules.plan import ACCOUNT, Gap, Policy, Scope
from archiver.store import state as store_state
from archiver.store.db import transaction
from archiver.store.owed import Owed
from archiver.timeutil import buckets

# The cycle's lines keep the logger name they had when this lived in sync.py: operators'
# filters and the tests select on it.
log = logging.getLogger("archiver.cycle.sync")

# How many names of the streams nobody asked for one answer's error line shows.
STRANGERS_SHOWN = 5


def store_answer(
    *,
    engine: Engine,
    result: FetchResult,
    scopes: tuple[Scope, ...],
    policy: Policy,
    report: CycleReport,
) -> None:
    """Store one answer in one transaction; a failed or refused one fails only its scopes."""
    report.requests += 1
    note_strangers(report, result)
    if result.error is not None:
        fail(engine, report, scopes, str(result.error), result.fetched_at)
        return
    settlement, broken = settled_rows(result, scopes, policy, report)
    try:
        with transaction(engine) as conn:
            written = write_answer(conn, result, scopes, broken, settlement, policy, report)
    except DatabaseError as exc:
        # One response the database refuses must not stop the others: its scopes keep
        # their watermarks and the next cycle asks again.
        what = f"{result.request.describe()}: {exc}"
        fail(engine, report, scopes, what, result.fetched_at)
        return
    count_answer(report, result, broken, written)


def settled_rows(
    result: FetchResult, scopes: tuple[Scope, ...], policy: Policy, report: CycleReport
) -> tuple[Settlement, tuple[Scope, ...]]:
    """What the answer settles, its rows stamped with it, and its broken scopes."""
    settlement = settle(result, policy, report)
    for row in result.rows:
        row["fetched_at"] = settlement.fetched_at
        row["is_final"] = settlement.final(row["period_start"])
    return settlement, tuple(s for s in scopes if s.stream in result.failed)


def note_strangers(report: CycleReport, result: FetchResult) -> None:
    """Streams nobody asked for are never stored (its batch may be another's): reported, one
    line per answer however many it holds; the requested streams are judged each alone."""
    if result.strangers:
        stranger = _strangers(result.request.describe(), result.strangers)
        report.errors.append(stranger)
        log.error("%s", stranger)


def count_answer(
    report: CycleReport,
    result: FetchResult,
    broken: tuple[Scope, ...],
    written: store_state.Written,
) -> None:
    """A stored answer in the cycle's counters: its broken streams, its rows per table."""
    if broken:
        report.failed += 1
        for scope in broken:
            report.errors.append(result.failed[scope.stream])
            log.error("broken answer (will retry next cycle): %s", result.failed[scope.stream])
    report.rows += written.rows
    table = result.request.endpoint.table
    report.rows_by_table[table] = report.rows_by_table.get(table, 0) + written.rows


def write_answer(
    conn: Connection,
    result: FetchResult,
    scopes: tuple[Scope, ...],
    broken: tuple[Scope, ...],
    settlement: Settlement,
    policy: Policy,
    report: CycleReport,
    owed: Owed | None = None,
    seen: dict[str, datetime] | None = None,
) -> store_state.Written:
    """The rows (an account Day answer checked against its months first), the good scopes'
    watermarks with the gaps of the zeros they pass inside the retention margin, the streams
    seen and the broken scopes' errors, in the caller's transaction. The rollups and the good
    scopes' bookkeeping are owed to `owed` and the streams seen noted in `seen`, when given,
    for the caller to write before its commit."""
    dataset = result.request.endpoint.dataset
    good = tuple(s for s in scopes if s not in broken)
    before = len(report.gaps)
    if owed is not None and (broken or day_check.applies(result.request)):
        owed.book_now(conn)  # what follows reads or writes the scopes' state
    settlement = day_check.checked(
        conn, result.request, result.rows, settlement, policy, report.gaps
    )
    if owed is not None and _in_margin(settlement):
        owed.book_now(conn)  # _doubted reads the watermarks
    doubted = _doubted(conn, dataset, good, result.rows, settlement, report.gaps[before:])
    written = store_state.store_response(
        conn=conn,
        dataset=dataset,
        scopes=good,
        rows=result.rows,
        settlement=settlement,
        owed=owed,
    )
    if doubted:
        store_state.start_scopes(
            conn=conn, watermarks={}, gaps=doubted, recorded_at=settlement.fetched_at
        )
        # Noted before the commit, as the Day check's gaps are: if it fails, the answer is
        # asked again and they are found again.
        report.gaps.extend(doubted)
    if result.request.endpoint.marks_seen and result.rows:
        if seen is None:
            mark_seen(conn=conn, last_seen=_last_seen(result.rows))
        else:
            for name, moment in _last_seen(result.rows).items():
                seen[name] = max(moment, seen.get(name, moment))
    for scope in broken:
        store_state.record_failure(
            conn=conn, scopes=[scope], error=result.failed[scope.stream], at=result.fetched_at
        )
    return written


def _in_margin(settlement: Settlement) -> bool:
    """Whether the answer reaches inside the retention margin (its zeros may be purges)."""
    return settlement.trusted_from is not None and settlement.trusted_from > settlement.chunk_start


def _doubted(
    conn: Connection,
    dataset: str,
    scopes: tuple[Scope, ...],
    rows: Sequence[dict[str, Any]],
    settlement: Settlement,
    known: Sequence[Gap],
) -> list[Gap]:
    """The zeros this answer reads inside the retention margin, for each scope whose watermark
    it moves past them: gaps, never final zeros (the rule: Settlement.doubted). Buckets the
    Day check already recorded (`known`) are left to its gap, which a second one starting
    at the same bucket would shorten."""
    if not _in_margin(settlement):
        return []
    gaps: list[Gap] = []
    for scope in store_state.moving(
        conn=conn, dataset=dataset, scopes=scopes, settlement=settlement
    ):
        held = {r["period_start"] for r in rows if r.get("stream_name", ACCOUNT) == scope.stream}
        for gap in known:
            if gap.scope == scope:
                held.update(buckets(gap.start, gap.stop, scope.resolution))
        for start, stop in settlement.doubted(held):
            log.warning(
                "lost data? %s %s %s buckets %s..%s read back as zero inside the retention "
                "margin: the vendor may have purged them as it answered, recorded as a gap",
                scope.dataset,
                scope.stream or "(account)",
                scope.resolution,
                start.isoformat(),
                stop.isoformat(),
            )
            gaps.append(Gap(scope, start, stop))
    return gaps


def _last_seen(rows: Sequence[dict[str, Any]]) -> dict[str, datetime]:
    """Per stream, the start of its latest bucket in the answer."""
    seen: dict[str, datetime] = {}
    for row in rows:
        name = row["stream_name"]
        if name not in seen or seen[name] < row["period_start"]:
            seen[name] = row["period_start"]
    return seen


def settle(result: FetchResult, policy: Policy, report: CycleReport) -> Settlement:
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
        # The vendor's purge line when it answered, judged late rather than early (its own
        # `Date` if later, plus the clock agreement): a bucket it surely still held then was
        # read as it is, a quiet zero included; a zero before that line may be a purge.
        vendor = None if result.reading is None else result.reading.vendor
        latest = at if vendor is None else max(at, vendor)
        trusted = policy.reach(request.endpoint, request.resolution, latest + AGREEMENT)
        return Settlement(
            policy, request.resolution, request.start, request.stop, at, trusted_from=trusted
        )
    stamp = result.fetched_at if result.reading is None else belief.now(result.reading.host)
    return Settlement(policy, request.resolution, request.start, request.stop, stamp, settles=False)


def fail(
    engine: Engine, report: CycleReport, scopes: tuple[Scope, ...], error: str, at: datetime
) -> None:
    """Count a failed request and note it on its scopes; their watermarks stay."""
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
