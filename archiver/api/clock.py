"""The vendor's clock: each answer's `Date` header read against ours, kept as a reading."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from archiver.rules.reading import Reading


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
