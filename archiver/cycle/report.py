"""What one cycle did (its report), and the time a cycle runs at."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from archiver.config import Settings
from archiver.rules.clock_trust import Belief
from archiver.rules.plan import Gap
from archiver.rules.reading import CLOCK_TOLERANCE
from archiver.vocabulary import RunKind

Progress = Callable[["CycleReport"], None]


@dataclass
class CycleReport:
    """What one cycle did."""

    kind: RunKind
    now: datetime
    planned: int = 0
    requests: int = 0
    failed: int = 0
    rows: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    discovered: list[str] = field(default_factory=list)
    dormant: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0
    # The vendor's clock minus ours (its `Date` header); None: not measured.
    skew: timedelta | None = None
    # The verdict on the vendor's clock; until the cycle reads it, nothing may be settled.
    belief: Belief = field(default_factory=lambda: Belief(None, timedelta(0), "not read yet"))
    # Why some or all of the cycle was not settled on the vendor's clock; None: all was.
    clock_problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when every planned request (and discovery) succeeded on a believed clock."""
        return not self.errors and self.clock_problem is None

    def summary(self) -> str:
        """One line for logs and the terminal."""
        text = (
            f"{self.kind}: {self.requests - self.failed}/{self.planned} requests ok, "
            f"{self.rows} rows, {len(self.gaps)} gaps, {len(self.discovered)} new streams, "
            f"{self.duration:.1f}s"
        )
        if self.skew is not None and abs(self.skew) > CLOCK_TOLERANCE:
            text += f", vendor clock {self.skew.total_seconds():+.0f}s from ours"
        if self.clock_problem is not None:
            text += f", clock not believed: {self.clock_problem}"
        if self.errors:
            text += f", {len(self.errors)} errors (first: {self.errors[0]})"
        return text


def current_time(settings: Settings) -> datetime:
    """`ARCHIVER_NOW` if set, else the wall clock."""
    return settings.now or datetime.now(UTC)
