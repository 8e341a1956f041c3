"""Whether a cycle may believe the vendor's clock: the only clock anything is settled on.

A wrong clock costs data silently: a reading ahead of the vendor's real time makes partial
buckets final, moves watermarks past buckets the vendor has not refreshed, records gaps for
data it still holds and sends live streams dormant. So every `Date` header is a *reading*,
and a cycle's clock is believed only when its readings agree with each other and with a
reference: the skew of the last cycle whose clock was believed, or with none, the host
clock. A cycle that cannot believe its clock still stores what it reads, but settles
nothing on it; the next cycle with a believable clock settles everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from archiver.api.clock import CLOCK_TOLERANCE, Reading

# Readings closer than this agree: `Date` has whole seconds, answers take time to read.
AGREEMENT = timedelta(seconds=30)
# A host clock that is really off (an hour, say) would otherwise never be believed again: a
# skew that every cycle has measured, unchanged, for this long (by the host clock, over two
# cycles at least) becomes the reference. Long enough that a vendor sending a wrong `Date`
# for a few cycles is outlasted; short against the vendor's 7-day windows, and the cycles in
# between still store what they read (nothing is lost, it is only settled later).
PERSISTENCE = timedelta(hours=6)
# How a problem of single answers begins: their cycle's own clock was believed (the history
# counts it so), only those answers settled nothing.
ANSWERS_NOT_SETTLED = "some answers settled nothing: "


@dataclass(frozen=True)
class History:
    """What earlier cycles measured (from `sync_runs`)."""

    # The skew of the last cycle whose clock was believed, and the vendor's time it was at.
    believed_skew: timedelta | None = None
    believed_at: datetime | None = None
    # Cycles since then whose clock was not believed: (host start, skew), newest first.
    doubted: Sequence[tuple[datetime, timedelta]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Belief:
    """A cycle's verdict on the vendor's clock."""

    skew: timedelta | None  # what the cycle's readings say (None: nothing said)
    # Not believed, the cycle plans and stamps rows by the earliest plausible time: the
    # reference's (the last believed skew, or the host's) or a reading's, whichever is
    # earlier, so that nothing is dated (a stream's first sighting) later than it happened.
    fallback: timedelta
    problem: str | None  # why the clock is not believed; None: it is
    # Whether an earlier cycle's clock was believed (else the reference is the bare host).
    vetted: bool = False

    @property
    def believed(self) -> bool:
        """Whether anything may be settled (made final, gapped, made dormant) this cycle."""
        return self.problem is None and self.skew is not None

    def now(self, host: datetime) -> datetime:
        """The vendor's time at host time `host`: by the cycle's skew if believed, else by
        the fallback (used to plan and to stamp rows, never to settle)."""
        skew = self.skew if self.believed and self.skew is not None else self.fallback
        # Within the tolerance our clock is the finer one (`Date` has whole seconds).
        return host if abs(skew) <= CLOCK_TOLERANCE else host + skew

    def settle_time(self, reading: Reading | None) -> tuple[datetime | None, str | None]:
        """The time one answer may be settled at (None: not at all), and what was wrong.

        An answer whose own `Date` disagrees with the cycle's believed clock settles
        nothing: its rows are stored, not final, and it moves no watermark.
        """
        if not self.believed or self.skew is None or reading is None:
            return None, None
        if reading.vendor is None:
            return None, f"{ANSWERS_NOT_SETTLED}an answer came without a Date header"
        # Its `Date` was written between our `sent` and `host`, shifted by the skew.
        if reading.vendor > reading.host + self.skew + AGREEMENT:
            off = reading.vendor - reading.host - self.skew
        elif reading.vendor < reading.sent + self.skew - AGREEMENT:
            off = reading.vendor - reading.sent - self.skew
        else:
            return reading.fetched_at, None
        return None, f"{ANSWERS_NOT_SETTLED}an answer's Date was {describe(off)} the cycle's clock"


def describe(delta: timedelta) -> str:
    """`2 d 0 h ahead of` / `30 min behind`, for problems shown to people."""
    side = "ahead of" if delta > timedelta(0) else "behind"
    return f"{amount(delta)} {side}"


def amount(delta: timedelta) -> str:
    """`2 d 0 h`, `1 h 5 min`, `30 min`, `40 s`: the size of a difference."""
    seconds = abs(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400:.0f} d {seconds % 86400 // 3600:.0f} h"
    if seconds >= 3600:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    if seconds >= 60:
        return f"{seconds // 60:.0f} min"
    return f"{seconds:.0f} s"


def believe(readings: Sequence[Reading], history: History, host_now: datetime) -> Belief:
    """The verdict on a cycle's clock from the readings of its start (discovery, a probe).

    Believed only if there is a reading, every reading has a `Date`, they agree with each
    other, the vendor's time does not go back against the last believed cycle, and the skew
    agrees with the reference or with the host clock (or has persisted, see PERSISTENCE).
    """
    reference = history.believed_skew or timedelta(0)
    vetted = history.believed_skew is not None
    against = "the last believed" if history.believed_skew is not None else "this host's"
    measured = [r.skew for r in readings if r.skew is not None]
    fallback = min([reference, *measured])
    skew = measured[0] if measured else None
    if not readings:
        return Belief(
            None, fallback, "the vendor's clock could not be read (no answer)", vetted=vetted
        )
    if skew is None or len(measured) < len(readings):
        return Belief(
            skew,
            fallback,
            "an answer had no Date header: the vendor's clock is unknown",
            vetted=vetted,
        )
    spread = max(measured) - min(measured)
    if spread > AGREEMENT:
        problem = f"the vendor's answers disagree about its time by {amount(spread)}"
        return Belief(skew, fallback, problem, vetted=vetted)
    vendor_now = host_now + skew
    if history.believed_at is not None and vendor_now < history.believed_at - AGREEMENT:
        off = describe(vendor_now - history.believed_at)
        problem = f"the vendor's clock went back: {off} an earlier cycle's"
        return Belief(skew, fallback, problem, vetted=vetted)
    # Agreeing with the bare host clock is believed whatever the reference: two independent
    # clocks that agree are both right (a host clock set right again after running off).
    near_host = abs(skew) <= AGREEMENT
    if (
        abs(skew - reference) > AGREEMENT
        and not near_host
        and not persisted(skew, history, host_now)
    ):
        problem = f"the vendor's Date is {describe(skew - reference)} {against} clock"
        return Belief(skew, fallback, problem, vetted=vetted)
    return Belief(skew, fallback, None, vetted=vetted)


def persisted(skew: timedelta, history: History, host_now: datetime) -> bool:
    """Whether the cycles just before this one all measured `skew`, for PERSISTENCE."""
    since: datetime | None = None
    for started, earlier in history.doubted:
        if abs(earlier - skew) > AGREEMENT:
            break
        since = started
    return since is not None and host_now - since >= PERSISTENCE
