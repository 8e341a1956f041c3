"""The viewer statistics' 5-minute periods: their row shapes and their instants."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from archiver.simulator.buckets import EPOCH

PERIOD_MINUTES = 5


class PeriodStat(NamedTuple):
    """One stream's viewers in one 5-minute period (`period` counts periods since the epoch).

    A tuple, not a dataclass: a read of every stream's week builds a million at 10,000 streams."""

    stream: int
    period: int
    active: int
    started: int
    ended: int


class SessionStats(NamedTuple):
    """A session's viewer statistics as columns, one entry per period from `first`.

    Columns, not a row object per period: the account's sums keep 300,000 of these at 10,000
    streams, and millions of small objects made the garbage collector most of the cost."""

    first: int
    active: tuple[int, ...]
    started: tuple[int, ...]
    ended: tuple[int, ...]

    def rows(self, stream: int, first: int, last: int) -> Iterator[PeriodStat]:
        """Its rows of the periods in `[first, last)`."""
        low, high = max(first - self.first, 0), min(last - self.first, len(self.active))
        for k in range(low, high):
            yield PeriodStat(stream, self.first + k, self.active[k], self.started[k], self.ended[k])


NO_SESSION = SessionStats(0, (), (), ())


def at(seconds: int) -> datetime:
    """An instant from seconds since the epoch."""
    return EPOCH + timedelta(seconds=seconds)


def seconds(moment: datetime) -> int:
    """Whole seconds since the epoch (floored)."""
    return int((moment - EPOCH).total_seconds() // 1)


def periods_between(start: datetime, stop: datetime, now: datetime) -> tuple[int, int]:
    """The periods starting in `[start, stop)` that ended by `now`, as `[first, last)`."""
    first = seconds(start) // (PERIOD_MINUTES * 60)
    last = min(-(-seconds(stop) // (PERIOD_MINUTES * 60)), seconds(now) // (PERIOD_MINUTES * 60))
    return first, last
