"""The vendor's clock: when an answer was read, by its `Date` header when ours disagrees."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

# Within this, the host clock is trusted (the `Date` header has whole seconds only).
CLOCK_TOLERANCE = timedelta(seconds=2)


class VendorClock:
    """Our clock checked against the vendor's; remembers the last skew measured."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.now = now
        self._lock = threading.Lock()
        self._skew: timedelta | None = None

    @property
    def skew(self) -> timedelta | None:
        """The vendor's clock minus ours, as last measured (None: never)."""
        return self._skew

    def judge(self, vendor_time: datetime | None) -> tuple[datetime, timedelta | None]:
        """The time an answer was read, by the vendor's clock when ours disagrees; the skew.

        A fast host clock must never make a partial bucket final, nor move a watermark past
        the vendor's now; a slow one must not make the archiver ask for purged buckets.
        """
        host = self.now()
        if vendor_time is None:
            return host, None
        skew = vendor_time - host
        with self._lock:
            self._skew = skew
        if abs(skew) <= CLOCK_TOLERANCE:
            return host, skew
        return vendor_time, skew
