"""What earlier cycles measured of the vendor's clock, from `sync_runs`."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.clock_trust import ANSWERS_NOT_SETTLED, History
from archiver.store.tables import sync_runs

# Enough runs to span PERSISTENCE at any schedule (a cycle every 15 s: 6 h is 1,440 runs).
LOOK_BACK = 2000


def clock_history(conn: Connection) -> History:
    """The last believed skew and the doubted runs since it (newest first).

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
    doubted: list[tuple[datetime, timedelta]] = []
    for started, seconds, problem in conn.execute(query):
        skew = timedelta(seconds=seconds)
        if problem is None or problem.startswith(ANSWERS_NOT_SETTLED):
            return History(skew, started + skew, tuple(doubted))
        doubted.append((started, skew))
    return History(None, None, tuple(doubted))
