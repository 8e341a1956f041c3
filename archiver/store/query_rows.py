"""A GraphQL dataset's rows, written as its declared finality says: a final row stays as it is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from archiver.datasets import Dataset, Finality, Query
from archiver.store.session_days import refresh_session_days
from archiver.store.tables import DATASET_TABLES
from archiver.store.upsert import upsert_rows
from archiver.store.viewer_rollup import refresh_viewer_rollups, serialise_viewer_writers


def save_rows(conn: Connection, query: Query, rows: Sequence[dict[str, Any]]) -> int:
    """Insert or update `rows` (every column given) in the caller's transaction; the rows sent.

    Final by its period (`is_final`): the one upsert path, whose guard never lets a row that is
    not final replace a final one. Final once ended: a stored row is updated only while its
    `ended` is NULL (a later read never changes an ended session).
    """
    table = DATASET_TABLES[query.table]
    if query.finality is Finality.PERIOD:
        if not rows:
            return 0
        serialise_viewer_writers(conn)
        written = upsert_rows(conn=conn, table=table, rows=rows)
        # Same transaction: a rollup never disagrees with the rows it groups.
        refresh_viewer_rollups(conn, table.name, rows)
        return written
    if not rows:
        return 0
    serialise_viewer_writers(conn)  # the day figures, as the viewer rollups, read what is stored
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
    statement = insert.on_conflict_do_update(
        index_elements=[c.name for c in table.primary_key.columns],
        set_={c.name: insert.excluded[c.name] for c in table.columns if not c.primary_key},
        where=table.c.ended.is_(None),
    )
    conn.execute(statement, list(rows))
    if query.dataset is Dataset.STREAM_SESSIONS:
        refresh_session_days(conn, rows)  # same transaction: the days agree with the sessions
    return len(rows)
