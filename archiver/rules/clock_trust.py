"""Whether a cycle may believe the vendor's clock: the only clock anything is settled on.

A wrong clock costs data silently: a reading ahead of the vendor's real time makes partial
buckets final, moves watermarks past buckets the vendor has not refreshed, records gaps for
data it still holds and sends live streams dormant. So every `Date` header is a *reading*,
judged by the window it was written in: between our clock as the request went out (`sent`)
and as its answer was read (`host`), shifted by the vendor's skew.

The rule. An ESTABLISHED reference skew R (at first 0: the host clock) is kept implicitly in
`sync_runs` (archiver/store/clock_runs.py replays it). A cycle is believed when all its
readings agree with each other and with R: each vendor time within
[sent + R - AGREEMENT, host + R + AGREEMENT]. R does not follow each believed cycle (a `Date`
a little further ahead each cycle would walk it anywhere): it changes only when a new skew S
has been measured by every cycle (believed or not) across at least PERSISTENCE, each within
AGREEMENT of S, and |S| <= MAX_SKEW; then R := S. So a slow drift is followed, a creep is
not, a lie of days never is, and nothing else (not even agreeing with the bare host clock)
moves R: a host clock set right again costs PERSISTENCE of unsettled (not lost) cycles. A
`Date` earlier than the last believed vendor time is doubted unless it has persisted:
recovery after a believed lie takes at most PERSISTENCE.

Believed, an answer settles at min(its `Date`, its read time + R), never later than either,
and the cycle's now is the earliest of its readings so taken. Doubted, a cycle plans and
stamps by host + R, lowered only by readings within MAX_SKEW of it, and settles nothing; the
next cycle with a believable clock settles everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from archiver.rules.reading import CLOCK_TOLERANCE, Reading

# Readings closer than this agree: `Date` has whole seconds, answers take time to read.
AGREEMENT = timedelta(seconds=30)
# A host clock that is really off (an hour, say) would otherwise never be believed again: a
# skew that every cycle has measured, unchanged, for this long (by the host clock, over two
# cycles at least) becomes the reference. Long enough that a vendor sending a wrong `Date`
# for a few cycles is outlasted; short against the vendor's 7-day windows, and the cycles in
# between still store what they read (nothing is lost, it is only settled later).
PERSISTENCE = timedelta(hours=6)
# The largest skew that may become the reference: a host off by whole hours (a time zone
# mistake) is plausible, one off by days is not; nor is a reading that far from the reference
# used to plan (a `Date` of 1970 would start new streams 56 years back).
MAX_SKEW = timedelta(days=1)
# How a problem of single answers begins: their cycle's own clock was believed (the history
# counts it so), only those answers settled nothing.
ANSWERS_NOT_SETTLED = "some answers settled nothing: "


@dataclass(frozen=True)
class History:
    """What earlier cycles measured (from `sync_runs`)."""

    # The established reference skew R (None: no cycle believed yet, the host's clock is it),
    # and the vendor's time of the last believed cycle.
    reference: timedelta | None = None
    believed_at: datetime | None = None
    # Every cycle's measured skew, believed or not: (host start, skew), newest first.
    runs: Sequence[tuple[datetime, timedelta]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Belief:
    """A cycle's verdict on the vendor's clock."""

    skew: timedelta | None  # what the cycle's readings say (None: nothing said)
    # Not believed, the cycle plans and stamps rows by the earliest plausible time: the
    # reference's or a plausible reading's, whichever is earlier, so that nothing is dated
    # (a stream's first sighting) later than it happened.
    fallback: timedelta
    problem: str | None  # why the clock is not believed; None: it is
    # Whether an earlier cycle's clock was believed (else the reference is the bare host).
    vetted: bool = False
    # Believed: the reference R the answers settle by (the new one if this cycle moved it),
    # and the cycle's now as an offset from the host clock (the earliest reading's).
    reference: timedelta = timedelta(0)
    offset: timedelta | None = None

    @property
    def believed(self) -> bool:
        """Whether anything may be settled (made final, gapped, made dormant) this cycle."""
        return self.problem is None and self.skew is not None

    def now(self, host: datetime) -> datetime:
        """The vendor's time at host time `host`: by the cycle's clock if believed, else by
        the fallback (used to plan and to stamp rows, never to settle)."""
        if self.believed:
            skew = self.offset if self.offset is not None else self.skew
        else:
            skew = self.fallback
        assert skew is not None
        # Within the tolerance our clock is the finer one (`Date` has whole seconds).
        return host if abs(skew) <= CLOCK_TOLERANCE else host + skew

    def settle_time(self, reading: Reading | None) -> tuple[datetime | None, str | None]:
        """The time one answer may be settled at (None: not at all), and what was wrong.

        An answer whose own `Date` disagrees with the cycle's believed clock settles
        nothing: its rows are stored, not final, and it moves no watermark.
        """
        if not self.believed or reading is None:
            return None, None
        if reading.vendor is None:
            return None, f"{ANSWERS_NOT_SETTLED}an answer came without a Date header"
        off = outside(reading, self.reference)
        if off is None:
            return settle_point(reading, self.reference), None
        return None, f"{ANSWERS_NOT_SETTLED}an answer's Date was {describe(off)} the cycle's clock"


def outside(reading: Reading, reference: timedelta) -> timedelta | None:
    """How far a reading's `Date` falls outside its window by `reference` (None: inside)."""
    assert reading.vendor is not None
    if reading.vendor > reading.host + reference + AGREEMENT:
        return reading.vendor - reading.host - reference
    if reading.vendor < reading.sent + reference - AGREEMENT:
        return reading.vendor - reading.sent - reference
    return None


def settle_point(reading: Reading, reference: timedelta) -> datetime:
    """The latest time an agreeing answer may settle at: neither its `Date` nor its read
    time by the reference says it is later (within the tolerance, our finer clock)."""
    assert reading.vendor is not None
    if abs(reference) <= CLOCK_TOLERANCE and reading.vendor >= reading.host - CLOCK_TOLERANCE:
        return reading.host
    return min(reading.vendor, reading.host + reference)


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
    other (each by its own window) and with the reference R, or their skew has persisted
    (see the module's docstring).
    """
    reference = history.reference if history.reference is not None else timedelta(0)
    vetted = history.reference is not None
    against = "the established" if vetted else "this host's"
    measured = [r.skew for r in readings if r.skew is not None]
    # A reading days off the reference (a `Date` of 1970) is no plausible time to plan by.
    fallback = min([reference, *(m for m in measured if abs(m - reference) <= MAX_SKEW)])
    if not readings:
        return Belief(
            None, fallback, "the vendor's clock could not be read (no answer)", vetted=vetted
        )
    if len(measured) < len(readings):
        return Belief(
            measured[0] if measured else None,
            fallback,
            "an answer had no Date header: the vendor's clock is unknown",
            vetted=vetted,
        )
    # The skews each reading allows: its `Date` was written between `sent` and `host`.
    low = max(r.vendor - r.host for r in readings if r.vendor is not None)
    high = min(r.vendor - r.sent for r in readings if r.vendor is not None)
    # What the cycle measured: the skew nearest the reference that its readings allow.
    skew = min(max(reference, min(low, high)), max(low, high))
    if low - high > AGREEMENT:
        problem = f"the vendor's answers disagree about its time by {amount(low - high)}"
        return Belief(skew, fallback, problem, vetted=vetted)
    persists = persisted(skew, history, host_now) and abs(skew) <= MAX_SKEW
    went = history.believed_at is not None and host_now + skew < history.believed_at - AGREEMENT
    if went and not persists and history.believed_at is not None:
        off = describe(host_now + skew - history.believed_at)
        problem = f"the vendor's clock went back: {off} an earlier cycle's"
        return Belief(skew, fallback, problem, vetted=vetted)
    if low - AGREEMENT <= reference <= high + AGREEMENT:
        return agreed(readings, skew, fallback, reference, vetted)
    if persists:  # the new reference
        return agreed(readings, skew, fallback, skew, vetted)
    problem = f"the vendor's Date is {describe(skew - reference)} {against} clock"
    return Belief(skew, fallback, problem, vetted=vetted)


def agreed(
    readings: Sequence[Reading],
    skew: timedelta,
    fallback: timedelta,
    reference: timedelta,
    vetted: bool,
) -> Belief:
    """A believed cycle by `reference`: its now is the earliest of its settle points."""
    offset = min(settle_point(r, reference) - r.host for r in readings)
    return Belief(skew, fallback, None, vetted=vetted, reference=reference, offset=offset)


def persisted(skew: timedelta, history: History, host_now: datetime) -> bool:
    """Whether the cycles just before this one all measured `skew`, for PERSISTENCE."""
    since: datetime | None = None
    for started, earlier in history.runs:
        if abs(earlier - skew) > AGREEMENT:
            break
        since = started
    return since is not None and host_now - since >= PERSISTENCE
