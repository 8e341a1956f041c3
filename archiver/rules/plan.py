"""The planner: a pure function from (now, policy, streams, sync state) to one cycle's requests.

It applies the design's finality rules: a new scope starts at the vendor's exact purge line
(`Policy.reach`); buckets that fell out of the vendor's window before they became final become
gaps (a zero read inside the margin is judged by finality.py); every window
runs from the scope's watermark to the end of the current bucket, is split into chunks, and
streams sharing a watermark share requests of ten names. Data nearest its purge goes first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from archiver.datasets import ENDPOINTS, Dataset, Endpoint
from archiver.rules import finality
from archiver.timeutil import Resolution, add_buckets, ceil, floor, months_back, next_start
from archiver.vocabulary import ApiRequest, StreamStatus, batches

ACCOUNT = ""  # the stream name of account-level scopes


@dataclass(frozen=True, order=True)
class Scope:
    """What one watermark tracks: a dataset, a stream ('' for the account), a resolution."""

    dataset: str
    stream: str
    resolution: Resolution


@dataclass(frozen=True)
class ScopeState:
    """A scope's sync state as stored."""

    watermark: datetime
    last_success_at: datetime | None = None


@dataclass(frozen=True)
class StreamEntry:
    """A tracked stream the planner may ask about."""

    name: str
    status: StreamStatus  # active or dormant


@dataclass(frozen=True)
class Gap:
    """Buckets `[start, stop)` of a scope that the vendor purged before they were final."""

    scope: Scope
    start: datetime
    stop: datetime


@dataclass(frozen=True)
class PlannedRequest:
    """One API request and the scopes whose watermarks its answer may advance."""

    request: ApiRequest
    scopes: tuple[Scope, ...]
    deadline: datetime | None  # when its first bucket is purged; None: never


@dataclass(frozen=True)
class Purged:
    """Part of an asked range the vendor no longer holds (for backfill's report)."""

    dataset: str
    resolution: Resolution
    start: datetime
    stop: datetime


@dataclass(frozen=True)
class Selection:
    """Backfill's restriction of a cycle: a range, resolutions, streams."""

    start: datetime | None = None
    end: datetime | None = None
    resolutions: frozenset[Resolution] | None = None
    streams: frozenset[str] | None = None


class PolicySettings(Protocol):
    """The settings a policy is built from (`archiver.config.Settings` has them all)."""

    @property
    def hour_retention_days(self) -> int: ...
    @property
    def day_retention_days(self) -> int: ...
    @property
    def stream_retention_days(self) -> int: ...
    @property
    def retention_margin_minutes(self) -> int: ...
    @property
    def month_history_months(self) -> int: ...
    @property
    def settle_minutes(self) -> int: ...
    @property
    def max_buckets_per_request(self) -> int: ...
    @property
    def dormant_check_hours(self) -> int: ...


@dataclass(frozen=True)
class Policy:
    """The vendor's retention and our finality rules, from settings."""

    hour_retention: timedelta = timedelta(days=7)
    day_retention: timedelta = timedelta(days=365)
    stream_retention: timedelta = timedelta(days=7)
    margin: timedelta = timedelta(minutes=60)
    month_history_months: int = 24
    settle: timedelta = timedelta(minutes=60)
    max_buckets_per_request: int = 744
    dormant_check: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: PolicySettings) -> Policy:
        """The policy the settings describe (read structurally: no import of the settings)."""
        return cls(
            hour_retention=timedelta(days=settings.hour_retention_days),
            day_retention=timedelta(days=settings.day_retention_days),
            stream_retention=timedelta(days=settings.stream_retention_days),
            margin=timedelta(minutes=settings.retention_margin_minutes),
            month_history_months=settings.month_history_months,
            settle=timedelta(minutes=settings.settle_minutes),
            max_buckets_per_request=settings.max_buckets_per_request,
            dormant_check=timedelta(hours=settings.dormant_check_hours),
        )

    def retention(self, endpoint: Endpoint, resolution: Resolution) -> timedelta | None:
        """How long the vendor keeps this dataset at this resolution; None: forever."""
        if endpoint.takes_streams:
            return self.stream_retention
        if resolution is Resolution.HOUR:
            return self.hour_retention
        if resolution is Resolution.DAY:
            return self.day_retention
        return None

    def reach(self, endpoint: Endpoint, resolution: Resolution, now: datetime) -> datetime:
        """The oldest bucket start the vendor still holds at `now`: its exact purge line."""
        return self._line(endpoint, resolution, now, timedelta(0))

    def horizon(self, endpoint: Endpoint, resolution: Resolution, now: datetime) -> datetime:
        """The safe line: the oldest bucket start whose zero is believed at `now` (older ones,
        back to `reach`, may be purged by the time the vendor answers: a zero there is a gap)."""
        return self._line(endpoint, resolution, now, self.margin)

    def _line(
        self, endpoint: Endpoint, resolution: Resolution, now: datetime, margin: timedelta
    ) -> datetime:
        retention = self.retention(endpoint, resolution)
        if retention is None:
            return months_back(now, self.month_history_months)
        return ceil(now - retention + margin, resolution)

    def first_unfinal(self, resolution: Resolution, fetched_at: datetime) -> datetime:
        """The start of the first bucket not final when read at `fetched_at` (finality.py)."""
        return finality.first_unfinal(self.settle, resolution, fetched_at)

    def is_final(self, resolution: Resolution, start: datetime, fetched_at: datetime) -> bool:
        """Whether a bucket is final when read at `fetched_at` (the rule: finality.py)."""
        return finality.is_final(self.settle, resolution, start, fetched_at)


@dataclass
class Plan:
    """One cycle's work."""

    requests: list[PlannedRequest] = field(default_factory=list)
    watermarks: dict[Scope, datetime] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    purged: list[Purged] = field(default_factory=list)


def streams_due(
    now: datetime,
    streams: Iterable[StreamEntry],
    state: Mapping[Scope, ScopeState],
    policy: Policy,
) -> list[str]:
    """Active streams, and dormant ones whose daily check is due, sorted by name."""
    due: list[str] = []
    for stream in streams:
        if stream.status == StreamStatus.ACTIVE:
            due.append(stream.name)
        elif stream.status == StreamStatus.DORMANT:
            checked = state.get(Scope(Dataset.STREAM_USAGE, stream.name, Resolution.HOUR))
            last = checked.last_success_at if checked else None
            if last is None or last <= now - policy.dormant_check:
                due.append(stream.name)
    return sorted(due)


def _chunks(
    start: datetime, stop: datetime, resolution: Resolution, size: int
) -> Iterable[tuple[datetime, datetime]]:
    while start < stop:
        end = min(add_buckets(start, resolution, size), stop)
        yield start, end
        start = end


def make_plan(
    *,
    now: datetime,
    policy: Policy,
    streams: Sequence[StreamEntry],
    state: Mapping[Scope, ScopeState],
    selection: Selection | None = None,
    endpoints: Sequence[Endpoint] = ENDPOINTS,
) -> Plan:
    """Every request of one cycle, most urgent first, plus watermark starts and gaps."""
    selection = selection or Selection()
    plan = Plan()
    names = streams_due(now, streams, state, policy)
    if selection.streams is not None:
        names = [n for n in names if n in selection.streams]
    for endpoint in endpoints:
        if selection.streams is not None and not endpoint.takes_streams:
            continue
        for resolution in endpoint.resolutions:
            if selection.resolutions is not None and resolution not in selection.resolutions:
                continue
            _plan_endpoint(plan, endpoint, resolution, now, policy, names, state, selection)
    far = datetime.max.replace(tzinfo=now.tzinfo)
    plan.requests.sort(
        key=lambda p: (p.deadline or far, p.request.start, p.request.endpoint.dataset)
    )
    return plan


def _plan_endpoint(
    plan: Plan,
    endpoint: Endpoint,
    resolution: Resolution,
    now: datetime,
    policy: Policy,
    names: list[str],
    state: Mapping[Scope, ScopeState],
    selection: Selection,
) -> None:
    horizon = policy.reach(endpoint, resolution, now)
    stop = next_start(floor(now, resolution), resolution)
    if selection.end is not None:
        stop = min(stop, ceil(selection.end, resolution))
    asked = floor(selection.start, resolution) if selection.start is not None else None
    if asked is not None and asked < horizon:
        plan.purged.append(Purged(endpoint.dataset, resolution, asked, horizon))
    retention = policy.retention(endpoint, resolution)

    scopes = (
        [Scope(endpoint.dataset, name, resolution) for name in names]
        if endpoint.takes_streams
        else [Scope(endpoint.dataset, ACCOUNT, resolution)]
    )
    by_watermark: dict[datetime, list[Scope]] = defaultdict(list)
    for scope in scopes:
        known = state.get(scope)
        watermark = known.watermark if known else horizon
        if known is None:
            plan.watermarks[scope] = watermark
        if watermark < horizon:
            plan.gaps.append(Gap(scope, watermark, horizon))
            watermark = horizon
            plan.watermarks[scope] = watermark
        by_watermark[watermark].append(scope)

    for watermark, group in sorted(by_watermark.items()):
        start = max(watermark, asked) if asked is not None else watermark
        if start >= stop:
            continue
        groups: list[tuple[tuple[str, ...], tuple[Scope, ...]]]
        if endpoint.takes_streams:
            by_name = {s.stream: s for s in group}
            groups = [
                (batch, tuple(by_name[n] for n in batch)) for batch in batches(sorted(by_name))
            ]
        else:
            groups = [((), tuple(group))]
        for chunk_start, chunk_stop in _chunks(
            start, stop, resolution, policy.max_buckets_per_request
        ):
            deadline = None if retention is None else chunk_start + retention
            for batch, batch_scopes in groups:
                request = ApiRequest(endpoint, resolution, chunk_start, chunk_stop, batch)
                plan.requests.append(PlannedRequest(request, batch_scopes, deadline))
