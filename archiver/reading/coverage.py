"""What the archive fetched of a scope: from its first fetch to its last read, less its gaps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.datasets import BY_DATASET, Dataset
from archiver.rules.plan import Policy
from archiver.timeutil import Resolution, utc
from archiver.vocabulary import RunStatus

FINAL = "final"
PARTIAL = "partial"
NOT_ARCHIVED = "not archived"
SOME_NOT_ARCHIVED = "part not archived"

Spans = tuple[tuple[datetime, datetime], ...]


def union(spans: list[tuple[datetime, datetime]]) -> Spans:
    """Sorted, merged, non-empty intervals."""
    merged: list[tuple[datetime, datetime]] = []
    for start, stop in sorted(s for s in spans if s[0] < s[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return tuple(merged)


def minus(spans: Spans, holes: Spans) -> Spans:
    """`spans` with every instant of `holes` taken out."""
    result = list(spans)
    for hole_start, hole_stop in holes:
        cut: list[tuple[datetime, datetime]] = []
        for start, stop in result:
            cut.extend([(start, min(stop, hole_start)), (max(start, hole_stop), stop)])
        result = [s for s in cut if s[0] < s[1]]
    return union(result)


def meets(spans: Spans, start: datetime, stop: datetime) -> bool:
    """Whether any instant of `[start, stop)` is in `spans`."""
    return any(a < stop and b > start for a, b in spans)


def covers(spans: Spans, start: datetime, stop: datetime) -> bool:
    """Whether every instant of `[start, stop)` is in `spans` (they are merged)."""
    return any(a <= start and b >= stop for a, b in spans)


@dataclass(frozen=True)
class Coverage:
    """Where a scope was read at all (`fetched`) and where it was read final (`final`)."""

    fetched: Spans
    final: Spans

    def state(self, start: datetime, stop: datetime, row_final: bool | None) -> str:
        """The state of `[start, stop)` holding a sum of archived parts (None: no row)."""
        if row_final is None and not meets(self.fetched, start, stop):
            return NOT_ARCHIVED
        if row_final is False or meets(minus(self.fetched, self.final), start, stop):
            return PARTIAL
        if not covers(self.fetched, start, stop):
            return SOME_NOT_ARCHIVED
        return FINAL


def parse_time(value: Any) -> datetime:
    """A time read back from either database: text on SQLite, a datetime on PostgreSQL."""
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return utc(value)


def _first_planned(conn: Connection, stream: str | None) -> datetime | None:
    """A time no earlier than the cycle that first planned the scope: the end of the first
    fully successful scheduled cycle since the stream was tracked (vendor's time)."""
    since = None
    if stream is not None:
        since = conn.execute(
            sa.text("SELECT added_at FROM tracked_streams WHERE stream_name = :s"), {"s": stream}
        ).scalar()
        if since is None:
            return None
    # Backfills are left out: one may have been limited to other streams or resolutions.
    query = (
        "SELECT finished_at, clock_skew_seconds FROM sync_runs WHERE status = :ok "
        "AND kind <> 'backfill' AND finished_at IS NOT NULL"
        + (" AND started_at >= :since" if since is not None else "")
        + " ORDER BY started_at LIMIT 1"
    )
    found = conn.execute(sa.text(query), {"ok": RunStatus.OK, "since": since}).first()
    if found is None:
        return None
    return parse_time(found[0]) + timedelta(seconds=found[1] or 0)


def coverage(
    conn: Connection, stream: str | None, resolutions: tuple[str, ...], policy: Policy
) -> Coverage:
    """Per resolution: from its first fetch (the planner's horizon then, or its first row if
    earlier) to its last successful read, less its gaps; final up to its watermark.

    No row is kept for a bucket without traffic and no record of where a scope's archiving
    began, so the first fetch is bounded from above: a read of it (its earliest row's
    `fetched_at`, its last success) or the first full cycle after it was tracked.
    """
    table, scope = (
        ("account_usage", "") if stream is None else ("stream_usage", " AND stream_name = :s")
    )
    dataset = Dataset.ACCOUNT_USAGE if stream is None else Dataset.STREAM_USAGE
    planned = _first_planned(conn, stream)
    fetched: list[tuple[datetime, datetime]] = []
    final: list[tuple[datetime, datetime]] = []
    for name in resolutions:
        resolution = Resolution(name)
        keys = {"d": dataset, "s": stream or "", "r": name}
        state = conn.execute(
            sa.text(
                "SELECT watermark, last_success_at FROM sync_state "
                "WHERE dataset = :d AND stream_name = :s AND resolution = :r"
            ),
            keys,
        ).first()
        if state is None or state[1] is None:
            continue  # never read successfully: no row, nothing vouched for
        watermark, last_read = parse_time(state[0]), parse_time(state[1])
        first_row, first_read = conn.execute(
            sa.text(
                f"SELECT MIN(period_start), MIN(fetched_at) FROM {table} "
                f"WHERE resolution = :r{scope}"
            ),
            {"r": name, "s": stream},
        ).one()
        bounds = [last_read] + [t for t in (planned,) if t is not None]
        if first_read is not None:
            bounds.append(parse_time(first_read))
        start = policy.reach(BY_DATASET[dataset], resolution, min(bounds))
        if first_row is not None:
            start = min(start, parse_time(first_row))
        gaps = union(
            [
                (parse_time(a), parse_time(b))
                for a, b in conn.execute(
                    sa.text(
                        "SELECT gap_start, gap_stop FROM sync_gaps "
                        "WHERE dataset = :d AND stream_name = :s AND resolution = :r"
                    ),
                    keys,
                )
            ]
        )
        fetched.extend(minus(((start, max(watermark, last_read)),), gaps))
        final.extend(minus(((start, watermark),), gaps))
    return Coverage(fetched=union(fetched), final=union(final))
