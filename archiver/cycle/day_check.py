"""Account Day buckets judged against their closed month before they are stored final."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.datasets import BY_DATASET, Dataset
from archiver.rules.finality import Settlement
from archiver.rules.plan import ACCOUNT, Gap, Policy, Scope
from archiver.store import state as store_state
from archiver.store.tables import account_usage, sync_state
from archiver.timeutil import Resolution, buckets, floor, next_start
from archiver.vocabulary import ApiRequest

log = logging.getLogger(__name__)

DAYS = Scope(Dataset.ACCOUNT_USAGE, ACCOUNT, Resolution.DAY)
MONTHS = Scope(Dataset.ACCOUNT_USAGE, ACCOUNT, Resolution.MONTH)


def waves(
    requests: Iterable[ApiRequest], stop: threading.Event | None = None
) -> Iterator[list[ApiRequest]]:
    """The account's Month requests first, then the rest: a Day answer is judged against its
    month, so the month must be archived before the days of the same cycle arrive. Nothing
    more once `stop` is set."""
    first: list[ApiRequest] = []
    rest: list[ApiRequest] = []
    for request in requests:
        month = (
            request.endpoint.dataset == MONTHS.dataset and request.resolution is MONTHS.resolution
        )
        (first if month else rest).append(request)
    for wave in (first, rest):
        if stop is not None and stop.is_set():
            return
        if wave:
            yield wave


@dataclass(frozen=True)
class _Month:
    """A closed month's account bytes, as archived final (zero when no row: how a zero is kept)."""

    bytes_in: int
    bytes_out: int


def applies(request: ApiRequest) -> bool:
    """Whether `request` is an account Day answer, checked against its months."""
    return request.endpoint.dataset == DAYS.dataset and request.resolution is DAYS.resolution


def checked(
    conn: Connection,
    request: ApiRequest,
    rows: list[dict[str, Any]],
    settlement: Settlement,
    policy: Policy,
    found: list[Gap],
) -> Settlement:
    """The settlement (and the rows' `is_final`) after an account Day answer's check against
    its months, in the caller's transaction; any other answer's, unchanged.

    A purged bucket reads back as zero, and a zero is archived as no row: so in a month whose
    days (this answer's and those archived) sum to less than its Month bucket, the answer's
    zero days are not the vendor's truth. They are recorded as a gap (appended to `found`),
    never as a final zero. A month not yet archived holds the watermark at its first day:
    those days are stored not final and asked again next cycle. Gaps are appended to `found`
    before the transaction commits: if it fails, the answer is asked again and they are found
    again.
    """
    if applies(request):
        return _check(conn, rows, settlement, policy, found)
    return settlement


def _check(
    conn: Connection,
    rows: list[dict[str, Any]],
    settlement: Settlement,
    policy: Policy,
    found: list[Gap],
) -> Settlement:
    if not settlement.settles:
        return settlement  # nothing is final and no watermark moves anyway
    at = settlement.fetched_at
    oldest = policy.horizon(BY_DATASET[MONTHS.dataset], Resolution.MONTH, at)
    by_day = {row["period_start"]: row for row in rows}
    month = floor(settlement.chunk_start, Resolution.MONTH)
    while month < settlement.chunk_stop:
        end = next_start(month, Resolution.MONTH)
        if not policy.is_final(Resolution.MONTH, month, at):
            break  # an open month: its days are judged by time alone, as every bucket is
        if month >= oldest:  # older months have no Month bucket to check against
            total = _month(conn, month)
            if total is None:
                return _hold(rows, settlement, month)
            _judge(conn, month, end, total, by_day, settlement, found)
        month = end
    return settlement


def _month(conn: Connection, month: datetime) -> _Month | None:
    """The month's final Month bucket; None while it is not archived final."""
    row = conn.execute(
        sa.select(account_usage.c.bytes_in, account_usage.c.bytes_out).where(
            account_usage.c.resolution == Resolution.MONTH.value,
            account_usage.c.period_start == month,
            account_usage.c.is_final,
        )
    ).first()
    if row is not None:
        return _Month(int(row.bytes_in), int(row.bytes_out))
    watermark = conn.execute(
        sa.select(sync_state.c.watermark).where(
            sync_state.c.dataset == MONTHS.dataset,
            sync_state.c.stream_name == MONTHS.stream,
            sync_state.c.resolution == MONTHS.resolution.value,
        )
    ).scalar()
    # Settled past this month without a row: the vendor said zero, and zero it is.
    return _Month(0, 0) if watermark is not None and watermark > month else None


def _judge(
    conn: Connection,
    month: datetime,
    end: datetime,
    total: _Month,
    by_day: dict[datetime, dict[str, Any]],
    settlement: Settlement,
    found: list[Gap],
) -> None:
    first, stop = max(month, settlement.chunk_start), min(end, settlement.chunk_stop)
    archived = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(account_usage.c.bytes_in), 0),
            sa.func.coalesce(sa.func.sum(account_usage.c.bytes_out), 0),
        ).where(
            account_usage.c.resolution == Resolution.DAY.value,
            account_usage.c.is_final,
            account_usage.c.period_start >= month,
            account_usage.c.period_start < end,
            sa.or_(account_usage.c.period_start < first, account_usage.c.period_start >= stop),
        )
    ).one()
    inside = [r for r in by_day.values() if first <= r["period_start"] < stop]
    days_in = int(archived[0]) + sum(r["bytes_in"] for r in inside)
    days_out = int(archived[1]) + sum(r["bytes_out"] for r in inside)
    if days_in >= total.bytes_in and days_out >= total.bytes_out:
        return  # the days explain the whole month: their zeros are true zeros
    zeros = [day for day in buckets(first, stop, Resolution.DAY) if day not in by_day]
    gaps = [Gap(DAYS, start, after) for start, after in _runs(zeros)]
    for gap in gaps:
        log.warning(
            "lost data: account Day buckets %s..%s read back as zero while their month holds "
            "%d bytes out its days do not: purged by the vendor, recorded as a gap",
            gap.start.isoformat(),
            gap.stop.isoformat(),
            total.bytes_out - days_out,
        )
    store_state.start_scopes(conn=conn, watermarks={}, gaps=gaps, recorded_at=settlement.fetched_at)
    found.extend(gaps)


def _runs(days: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive days as half-open ranges."""
    runs: list[tuple[datetime, datetime]] = []
    for day in days:
        after = next_start(day, Resolution.DAY)
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], after)
        else:
            runs.append((day, after))
    return runs


def _hold(rows: list[dict[str, Any]], settlement: Settlement, month: datetime) -> Settlement:
    """Nothing from `month` on is final yet: its Month bucket is not archived to check against."""
    for row in rows:
        if row["period_start"] >= month:
            row["is_final"] = False
    return replace(settlement, chunk_stop=max(month, settlement.chunk_start))
