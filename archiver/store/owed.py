"""What the writes of one transaction owe before it commits: rollups and scope bookkeeping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.store.rollup import feeds_rollups, refresh_rollups
from archiver.store.tables import sync_state

# A response's scope bookkeeping on exact keys, one parameter set per scope: a primary-key
# lookup the planner takes with or without statistics (an IN list on a fresh PostgreSQL
# archive, which has none, was planned as a scan of every scope).
_EXACT = sa.and_(
    sync_state.c.dataset == sa.bindparam("k_dataset"),
    sync_state.c.stream_name == sa.bindparam("k_stream"),
    sync_state.c.resolution == sa.bindparam("k_resolution"),
)
_TIME = sync_state.c.watermark.type
# Settlement.moves, as SQL built from its bounds: every watermark in [low, high) goes to
# high (proved equal over random watermarks and chunks: tests/test_watermark_move.py).
_MOVE = (
    sa.update(sync_state)
    .where(
        _EXACT,
        sync_state.c.watermark >= sa.bindparam("k_low", type_=_TIME),
        sync_state.c.watermark < sa.bindparam("k_high", type_=_TIME),
    )
    .values(watermark=sa.bindparam("k_high", type_=_TIME))
)
_SUCCEEDED = (
    sa.update(sync_state)
    .where(_EXACT)
    .values(last_success_at=sa.bindparam("k_at", type_=_TIME), last_error=None, last_error_at=None)
)

Key = tuple[str, str, str]


def book(conn: Connection, entries: Sequence[Mapping[str, Any]]) -> int:
    """Move the watermarks and note the successes of `entries` (one a scope: its key, the
    bounds `k_low`, `k_high`, the time `k_at`); the number of watermarks moved."""
    if not entries:
        return 0
    # Both drivers sum an executemany's rowcounts (SQLAlchemy: supports_sane_multi_rowcount).
    advanced = int(conn.execute(_MOVE, list(entries)).rowcount)
    conn.execute(_SUCCEEDED, list(entries))
    return advanced


class Owed:
    """The rollup refreshes and scope bookkeeping owed by the writes of one transaction,
    made together once, before it commits (`pay`). A refresh recomputes its keys from the
    rows: made once at the end, it sums the same. Bookkeeping is written in its order: a
    scope owed twice, or a read of the scopes (`book_now`), writes what is owed first."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Mapping[str, Any]]] = {}
        self._entries: list[Mapping[str, Any]] = []
        self._keys: set[Key] = set()
        self.locked = False  # the rollups' writer lock, taken once for the transaction

    def rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Owe the rollup refresh of `rows`, just written to `table`."""
        if feeds_rollups(table):
            self._rows.setdefault(table, []).extend(rows)

    def book(self, conn: Connection, entries: Sequence[Mapping[str, Any]]) -> None:
        """Owe the bookkeeping of `entries` (as `book` takes them)."""
        keys = {(e["k_dataset"], e["k_stream"], e["k_resolution"]) for e in entries}
        if keys & self._keys:
            self.book_now(conn)
        self._entries.extend(entries)
        self._keys |= keys

    def book_now(self, conn: Connection) -> None:
        """Write the bookkeeping owed so far (before anything reads the scopes)."""
        book(conn, self._entries)
        self._entries, self._keys = [], set()

    def pay(self, conn: Connection) -> None:
        """Write everything owed, in the caller's transaction."""
        self.book_now(conn)
        for table, rows in self._rows.items():
            refresh_rollups(conn, table, rows)
        self._rows.clear()
