"""What an answer may make permanent: which of its rows are final, where watermarks may move.

A pure function of the plan's policy, the request and the vendor's time of the answer; the
store writes what it is handed and decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from archiver.rules.plan import Policy
from archiver.timeutil import Resolution


@dataclass(frozen=True)
class Settlement:
    """The finality of one answer for `[chunk_start, chunk_stop)`, read at `fetched_at`.

    `settles` is False when the answer's time is not believed (archiver/rules/clock_trust.py):
    then no row is final and no watermark moves, whatever `fetched_at` says.
    """

    policy: Policy
    resolution: Resolution
    chunk_start: datetime
    chunk_stop: datetime
    fetched_at: datetime
    settles: bool = True

    def final(self, period_start: datetime) -> bool:
        """A bucket is final once read at least `settle` after its end."""
        if not self.settles:
            return False
        return self.policy.is_final(self.resolution, period_start, self.fetched_at)

    @property
    def target(self) -> datetime:
        """The first bucket of the chunk that is not final yet (its stop if all are)."""
        if not self.settles:
            return self.chunk_start
        first_unfinal = self.policy.first_unfinal(self.resolution, self.fetched_at)
        return max(self.chunk_start, min(self.chunk_stop, first_unfinal))

    def moves(self, watermark: datetime) -> datetime:
        """Where a scope's watermark goes: forward to `target`, and only from inside the
        chunk, so that a later chunk answered first never skips an earlier one not yet
        stored. The store applies this same rule in one UPDATE."""
        if self.chunk_start <= watermark < self.target:
            return self.target
        return watermark
