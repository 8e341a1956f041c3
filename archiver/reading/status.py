"""What the archive says about itself: last cycles, streams, watermarks, gaps, data at risk."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.config import Settings
from archiver.cycle.report import current_time
from archiver.datasets import BY_DATASET
from archiver.rules.plan import Policy
from archiver.store.tables import sync_gaps, sync_runs, sync_state, tracked_streams
from archiver.timeutil import Resolution, count_buckets, format_iso, next_start
from archiver.vocabulary import RunStatus, StreamStatus


@dataclass
class ScopeSummary:
    """One dataset and resolution across its scopes."""

    dataset: str
    resolution: str
    scopes: int
    oldest_watermark: datetime | None
    behind_seconds: float | None
    failing_scopes: int
    at_risk_buckets: int


@dataclass
class Status:
    """A snapshot for `archiver status`, the health check and the metrics."""

    now: datetime
    last_run: dict[str, Any] | None
    last_success_at: datetime | None
    next_cycle_at: datetime | None
    streams: dict[str, int]
    scopes: list[ScopeSummary] = field(default_factory=list)
    gaps: int = 0
    gap_buckets: int = 0
    at_risk_buckets: int = 0
    active: dict[str, Any] | None = None
    # Rows of the `reconciliation` view (None: an archive not yet upgraded to have it), and
    # how many of them a recorded gap explains.
    disagreements: int | None = None
    disagreements_with_gaps: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, times as every output writes them (`2026-11-17T23:00:00Z`)."""

        def convert(value: Any) -> Any:
            if isinstance(value, datetime):
                return format_iso(value)
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, list):
                return [convert(v) for v in value]
            return value

        result: dict[str, Any] = convert(asdict(self))
        return result


def next_cycle(now: datetime, minutes: str) -> datetime:
    """The next scheduled cycle time after `now` for a list of UTC minutes."""
    marks = sorted(int(m) for m in minutes.split(","))
    base = now.replace(second=0, microsecond=0)
    for hour_offset in (0, 1):
        hour = base.replace(minute=0) + timedelta(hours=hour_offset)
        for minute in marks:
            candidate = hour + timedelta(minutes=minute)
            if candidate > now:
                return candidate
    raise AssertionError("unreachable: some minute of the next hour is always later")


def next_interval_cycle(now: datetime, last_start: datetime | None, seconds: int) -> datetime:
    """The next cycle of an interval schedule: one interval after the last cycle began."""
    if last_start is None:
        return now
    return max(now, last_start + timedelta(seconds=seconds))


def behind(policy: Policy, resolution: Resolution, watermark: datetime, now: datetime) -> float:
    """Seconds since the bucket at `watermark` could have been made final (0 if it cannot
    yet): the current day or month not being over is not lag."""
    could_be_final = next_start(watermark, resolution) + policy.settle
    return max(0.0, (now - could_be_final).total_seconds())


def read_status(
    conn: Connection,
    *,
    now: datetime,
    policy: Policy,
    schedule_minutes: str,
    interval_seconds: int | None = None,
) -> Status:
    """Compute the status from the database alone, in time linear in the tracked scopes
    (never in how far behind they are)."""
    last = conn.execute(sa.select(sync_runs).order_by(sync_runs.c.id.desc()).limit(1)).first()
    last_success = conn.execute(
        sa.select(sa.func.max(sync_runs.c.finished_at)).where(sync_runs.c.status == RunStatus.OK)
    ).scalar()
    counts = {
        status: int(count)
        for status, count in conn.execute(
            sa.select(tracked_streams.c.status, sa.func.count()).group_by(tracked_streams.c.status)
        )
    }
    status = Status(
        now=now,
        last_run=None if last is None else dict(last._mapping),
        last_success_at=last_success,
        next_cycle_at=(
            next_interval_cycle(now, last.started_at if last else None, interval_seconds)
            if interval_seconds
            else next_cycle(now, schedule_minutes)
        ),
        streams={s.value: counts.get(s, 0) for s in StreamStatus},
    )
    risk_line = now + timedelta(hours=24)
    grouped: dict[tuple[str, str], list[Any]] = {}
    for row in conn.execute(sa.select(sync_state)):
        grouped.setdefault((row.dataset, row.resolution), []).append(row)
    for (dataset, resolution_text), rows in sorted(grouped.items()):
        resolution = Resolution(resolution_text)
        endpoint = BY_DATASET[dataset]
        soon = policy.horizon(endpoint, resolution, risk_line)
        oldest = min(r.watermark for r in rows)
        at_risk = 0
        for row in rows:
            at_risk += count_buckets(row.watermark, soon, resolution)
        status.scopes.append(
            ScopeSummary(
                dataset=dataset,
                resolution=resolution_text,
                scopes=len(rows),
                oldest_watermark=oldest,
                behind_seconds=behind(policy, resolution, oldest, now),
                failing_scopes=sum(1 for r in rows if r.last_error),
                at_risk_buckets=at_risk,
            )
        )
        status.at_risk_buckets += at_risk
    gap_rows = conn.execute(
        sa.select(sync_gaps.c.resolution, sync_gaps.c.gap_start, sync_gaps.c.gap_stop)
    ).all()
    status.gaps = len(gap_rows)
    status.gap_buckets = sum(
        count_buckets(start, stop, Resolution(res)) for res, start, stop in gap_rows
    )
    if "reconciliation" in sa.inspect(conn).get_view_names():
        total, with_gaps = conn.execute(
            sa.text(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN gap_recorded THEN 1 ELSE 0 END), 0) "
                "FROM reconciliation"
            )
        ).one()
        status.disagreements, status.disagreements_with_gaps = int(total), int(with_gaps)
    return status


def read_status_now(conn: Connection, settings: Settings) -> Status:
    """`read_status` at the archiver's time, with the settings' policy and schedule."""
    return read_status(
        conn,
        now=current_time(settings),
        policy=Policy.from_settings(settings),
        schedule_minutes=settings.schedule_minutes,
        interval_seconds=settings.schedule_interval_seconds,
    )
