"""The vendor's clock: each answer's `Date` header read against ours, kept as a reading."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

# Within this, the host clock is trusted (the `Date` header has whole seconds only).
CLOCK_TOLERANCE = timedelta(seconds=2)


@dataclass(frozen=True)
class Reading:
    """One answer's `Date` (None: it had none) and our clock around it.

    `sent` is our clock before the request went out, `host` after its answer was read: an
    honest `Date` lies between them (shifted by the skew), however slow the answer was.
    """

    sent: datetime
    host: datetime
    vendor: datetime | None

    @property
    def skew(self) -> timedelta | None:
        """The vendor's clock minus ours, by this answer (None: no `Date`)."""
        return None if self.vendor is None else self.vendor - self.host

    @property
    def fetched_at(self) -> datetime:
        """When the answer was read: our clock, or the vendor's when ours disagrees.

        Only a believed reading may settle anything (archiver/clock_trust.py decides).
        """
        skew = self.skew
        if self.vendor is None or skew is None or abs(skew) <= CLOCK_TOLERANCE:
            return self.host
        return self.vendor


class VendorClock:
    """Our clock read against the vendor's; keeps the readings until they are taken."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.now = now
        self._lock = threading.Lock()
        self._readings: list[Reading] = []

    def read(self, vendor_time: datetime | None, sent: datetime | None = None) -> Reading:
        """One answer's reading, kept for `take_readings`; `sent` defaults to now."""
        host = self.now()
        reading = Reading(sent if sent is not None else host, host, vendor_time)
        with self._lock:
            self._readings.append(reading)
        return reading

    def take_readings(self) -> list[Reading]:
        """The readings since the last call, oldest first (then forgotten)."""
        with self._lock:
            taken, self._readings = self._readings, []
        return taken
