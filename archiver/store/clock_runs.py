"""What earlier cycles measured of the vendor's clock, from `sync_runs`."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.rules.clock_trust import AGREEMENT, ANSWERS_NOT_SETTLED, History
from archiver.store.tables import sync_runs

# Enough runs to span PERSISTENCE at any schedule (a cycle every 15 s: 6 h is 1,440 runs),
# and to find the established reference behind a doubted stretch: at 15-minute cycles, 20
# days of them (a reference older than its runs is taken from the oldest believed one).
LOOK_BACK = 2000


def clock_history(conn: Connection) -> History:
    """The established reference skew, the last believed vendor time, and every run's skew.

    The reference is replayed from the believed runs, oldest first: a believed run whose
    skew differs from the reference by more than AGREEMENT is one that moved it (its skew
    had persisted); the others were believed by agreeing with it and leave it alone.
    Runs that read no clock (no `Date`, a crash before the first answer) are passed over;
    runs before migration 0007 have no problem recorded and count as believed, as they were;
    so do runs whose clock was believed but some answers' `Date` was not.
    The run in progress has recorded no skew yet, so it is not among them.
    """
    query = (
        sa.select(sync_runs.c.started_at, sync_runs.c.clock_skew_seconds, sync_runs.c.clock_problem)
        .where(sync_runs.c.clock_skew_seconds.is_not(None))
        .order_by(sync_runs.c.id.desc())
        .limit(LOOK_BACK)
    )
    newest_first = [
        (started, timedelta(seconds=seconds), problem)
        for started, seconds, problem in conn.execute(query)
    ]
    reference: timedelta | None = None
    believed_at: datetime | None = None
    for started, skew, problem in reversed(newest_first):
        if problem is None or problem.startswith(ANSWERS_NOT_SETTLED):
            if reference is None or abs(skew - reference) > AGREEMENT:
                reference = skew
            believed_at = started + skew
    runs = tuple((started, skew) for started, skew, _ in newest_first)
    return History(reference, believed_at, runs)
