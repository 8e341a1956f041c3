"""UTC bucket arithmetic for the vendor's Hour, Day and Month resolutions."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from archiver.errors import InputError

# The instants the archiver reasons about: far enough from the calendar's ends that every
# window, margin and month arithmetic stays inside it.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class Resolution(enum.StrEnum):
    """A bucket size, spelled as the vendor spells it."""

    HOUR = "Hour"
    DAY = "Day"
    MONTH = "Month"

    @classmethod
    def parse(cls, text: str) -> Resolution:
        """Accept any capitalisation (the live service echoes `day`)."""
        for member in cls:
            if member.value.lower() == text.strip().lower():
                return member
        allowed = ", ".join(m.value for m in cls)
        raise InputError(f"unknown resolution {text!r}: use one of {allowed}")


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


def ceil(value: datetime, resolution: Resolution) -> datetime:
    """The first bucket start at or after `value`."""
    start = floor(value, resolution)
    return start if start == utc(value) else next_start(start, resolution)


def add_buckets(start: datetime, resolution: Resolution, count: int) -> datetime:
    """Move `count` (>= 0) buckets forward from a bucket start."""
    if resolution is Resolution.HOUR:
        return start + timedelta(hours=count)
    if resolution is Resolution.DAY:
        return start + timedelta(days=count)
    months = start.year * 12 + start.month - 1 + count
    return start.replace(year=months // 12, month=months % 12 + 1)


def months_back(value: datetime, count: int) -> datetime:
    """The start of the month `count` months before the month of `value`."""
    first = floor(value, Resolution.MONTH)
    months = first.year * 12 + first.month - 1 - count
    return first.replace(year=months // 12, month=months % 12 + 1)


def buckets(start: datetime, stop: datetime, resolution: Resolution) -> Iterator[datetime]:
    """Every bucket start in `[start, stop)`; `start` must be a bucket start."""
    current = start
    while current < stop:
        yield current
        current = next_start(current, resolution)


def format_for_api(value: datetime, resolution: Resolution) -> str:
    """`startDate`/`stopDate` text: a time only where it is meaningful (hourly queries)."""
    value = utc(value)
    if resolution is Resolution.HOUR:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.strftime("%Y-%m-%d")


def format_iso(value: datetime) -> str:
    """ISO 8601 UTC with a `Z`, as the vendor writes time keys."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str, *, what: str = "time") -> datetime:
    """Parse `YYYY-MM-DD` or ISO 8601 (naive means UTC); one clear line on failure."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            parsed_date = date.fromisoformat(raw)
            value = datetime(parsed_date.year, parsed_date.month, parsed_date.day, tzinfo=UTC)
        else:
            value = utc(datetime.fromisoformat(raw.replace("Z", "+00:00")))
    except (ValueError, OverflowError):
        raise InputError(
            f"invalid {what} {text!r}: use YYYY-MM-DD or an ISO 8601 time such as "
            "2024-06-25T14:00:00Z"
        ) from None
    if not EARLIEST <= value < LATEST:
        raise InputError(
            f"invalid {what} {text!r}: out of range, use a time from {EARLIEST:%Y-%m-%d} to "
            f"{LATEST - timedelta(days=1):%Y-%m-%d}"
        )
    return value


def count_buckets(start: datetime, stop: datetime, resolution: Resolution) -> int:
    """How many buckets start in `[start, stop)`, in constant time; `start` is a bucket start."""
    if stop <= start:
        return 0
    if resolution is not Resolution.MONTH:
        size = timedelta(hours=1) if resolution is Resolution.HOUR else timedelta(days=1)
        # Exact to the microsecond: a stop just past a bucket start counts that bucket.
        return -(-(stop - start) // size)
    first = floor(stop, Resolution.MONTH)
    months = (first.year - start.year) * 12 + first.month - start.month
    return months + (1 if stop > first else 0)
