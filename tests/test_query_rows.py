"""A GraphQL dataset's rows are written as its declared finality says, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.datasets import STREAM_SESSIONS
from archiver.store.db import transaction
from archiver.store.query_rows import save_rows
from archiver.store.tables import stream_sessions

START = datetime(2026, 11, 20, 10, tzinfo=UTC)


def session(ended: datetime | None, fetched: datetime, **key: Any) -> dict[str, Any]:
    row = {
        "stream_name": "cam",
        "started": START,
        "feed_ordinal": 0,
        "ended": ended,
        "active": ended is None,
        "duration_seconds": None if ended is None else int((ended - START).total_seconds()),
        "fetched_at": fetched,
    }
    return {**row, **key}


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    t = stream_sessions
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.feed_ordinal, t.c.ended, t.c.active, t.c.duration_seconds).order_by(
                t.c.feed_ordinal
            )
        )
        return [tuple(row) for row in rows]


def test_a_session_is_updated_while_it_runs_and_never_once_it_has_ended(engine: Engine) -> None:
    first, ended = START + timedelta(minutes=5), START + timedelta(hours=1)
    with transaction(engine) as conn:
        assert save_rows(conn, STREAM_SESSIONS, [session(None, first)]) == 1
    assert stored(engine) == [(0, None, True, None)]
    with transaction(engine) as conn:  # the same feed read again once it has ended
        again = [session(ended, ended), session(None, ended, feed_ordinal=1)]
        assert save_rows(conn, STREAM_SESSIONS, again) == 2
    assert stored(engine) == [(0, ended, False, 3600), (1, None, True, None)]
    later = ended + timedelta(hours=2)
    for changed in (session(later, later), session(None, later)):
        with transaction(engine) as conn:  # an ended session is final: never written again
            assert save_rows(conn, STREAM_SESSIONS, [changed]) == 1
        assert stored(engine) == [(0, ended, False, 3600), (1, None, True, None)]
