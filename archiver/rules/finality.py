"""The finality rule, in one place: which rows of an answer are final, where watermarks move.

A bucket read inside the retention margin (between the vendor's purge line and the safe line,
`Policy.reach` and `Policy.horizon`) may have been purged while the vendor answered, and a
purged bucket reads back as zero: there, a bucket with traffic is the vendor's value, and a
zero is doubted (`Settlement.doubted`): recorded as a gap, never settled as a final zero.

A pure function of the settle delay, the request and the vendor's time of the answer; the
planner's `Policy` and the store's watermark UPDATE both read it from here, and the store
writes what it is handed and decides nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from archiver.timeutil import Resolution, buckets, floor, next_start

if TYPE_CHECKING:  # plan.py imports this module for the rule; only the type goes back
    from archiver.rules.plan import Policy


def is_final(settle: timedelta, resolution: Resolution, start: datetime, at: datetime) -> bool:
    """A bucket is final once read at least `settle` after its end."""
    return next_start(start, resolution) + settle <= at


def first_unfinal(settle: timedelta, resolution: Resolution, at: datetime) -> datetime:
    """The start of the first bucket not final when read at `at` (the same rule, by bucket)."""
    return floor(at - settle, resolution)


@dataclass(frozen=True)
class Settlement:
    """The finality of one answer for `[chunk_start, chunk_stop)`, read at `fetched_at`.

    `settles` is False when the answer's time is not believed (archiver/rules/clock_trust.py):
    then no row is final and no watermark moves, whatever `fetched_at` says.
    `trusted_from` is the vendor's purge line when it answered, judged late (cycle/answer.py):
    a zero before it is doubted; None: every zero is believed.
    """

    policy: Policy
    resolution: Resolution
    chunk_start: datetime
    chunk_stop: datetime
    fetched_at: datetime
    settles: bool = True
    trusted_from: datetime | None = None

    def final(self, period_start: datetime) -> bool:
        """A bucket is final once read at least `settle` after its end."""
        if not self.settles:
            return False
        return is_final(self.policy.settle, self.resolution, period_start, self.fetched_at)

    @property
    def target(self) -> datetime:
        """The first bucket of the chunk that is not final yet (its stop if all are)."""
        if not self.settles:
            return self.chunk_start
        limit = first_unfinal(self.policy.settle, self.resolution, self.fetched_at)
        return max(self.chunk_start, min(self.chunk_stop, limit))

    @property
    def moves_from(self) -> tuple[datetime, datetime]:
        """The watermarks this answer moves, `[low, high)`: only from inside the chunk, so
        that a later chunk answered first never skips an earlier one not yet stored, and
        only forward. Every one of them goes to `high`, the target. The store's UPDATE is
        built from these bounds (store/state.py; tests/test_watermark_move.py)."""
        return self.chunk_start, self.target

    def moves(self, watermark: datetime) -> datetime:
        """Where a scope's watermark goes: to the target from inside `moves_from`, else stays."""
        low, high = self.moves_from
        return high if low <= watermark < high else watermark

    def doubted(self, held: Collection[datetime]) -> list[tuple[datetime, datetime]]:
        """The buckets this answer settles that read zero (not in `held`, the bucket starts
        with traffic) before `trusted_from`, as runs `[start, stop)`: each may be a purged
        bucket, so it is recorded as a gap, never a final zero. The watermark still moves
        past them with the gap: a zero this close to the purge line can only become more
        doubtful, so asking again would hold the scope back and end in the same gap."""
        if self.trusted_from is None:
            return []
        stop = min(self.trusted_from, self.target)
        runs: list[tuple[datetime, datetime]] = []
        for start in buckets(self.chunk_start, stop, self.resolution):
            if start in held:
                continue
            after = next_start(start, self.resolution)
            if runs and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], after)
            else:
                runs.append((start, after))
        return runs


# The vendor's viewer statistics come in 5-minute periods on the hour's grid.
STAT_PERIOD = timedelta(minutes=5)


def period_final(settle: timedelta, start: datetime, at: datetime) -> bool:
    """A 5-minute statistics period is final by the same rule as a bucket: read at least
    `settle` after its end."""
    return start + STAT_PERIOD + settle <= at


def first_unfinal_period(settle: timedelta, at: datetime) -> datetime:
    """The start of the first 5-minute period not final when read at `at`."""
    moment = at - settle
    return moment.replace(second=0, microsecond=0) - timedelta(minutes=moment.minute % 5)
