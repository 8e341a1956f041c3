"""The vendor's UTC buckets (Hour, Day, Month), counted by the simulator's own arithmetic."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta

# The simulator is the vendor: its calendar must not move when the archiver's does, so
# this deliberately repeats a few lines of `archiver.timeutil` instead of importing them.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Resolution(enum.StrEnum):
    """A bucket size, spelled as the vendor spells it."""

    HOUR = "Hour"
    DAY = "Day"
    MONTH = "Month"


def utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def floor(value: datetime, resolution: Resolution) -> datetime:
    """The start of the bucket that contains `value`."""
    value = utc(value)
    if resolution is Resolution.HOUR:
        return value.replace(minute=0, second=0, microsecond=0)
    if resolution is Resolution.DAY:
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_start(start: datetime, resolution: Resolution) -> datetime:
    """The start of the bucket after the one starting at `start`."""
    if resolution is Resolution.HOUR:
        return start + timedelta(hours=1)
    if resolution is Resolution.DAY:
        return start + timedelta(days=1)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def format_iso(value: datetime) -> str:
    """ISO 8601 UTC with a `Z`, as the vendor writes time keys."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
