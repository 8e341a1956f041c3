"""One answer's `Date` header read against our clock: what the clock rule judges."""

from __future__ import annotations

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

        Only a believed reading may settle anything (archiver/rules/clock_trust.py decides).
        """
        skew = self.skew
        if self.vendor is None or skew is None or abs(skew) <= CLOCK_TOLERANCE:
            return self.host
        return self.vendor
