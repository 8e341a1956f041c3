"""One bulk, dialect-aware upsert path for every archive table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

_STATEMENTS: dict[tuple[str, str], Insert] = {}


def _statement(table: sa.Table, dialect: str) -> Insert:
    cached = _STATEMENTS.get((table.name, dialect))
    if cached is not None:
        return cached
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:
        raise NotImplementedError(f"no upsert for the {dialect} dialect")
    key = [c.name for c in table.primary_key.columns]
    values = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}
    where = None
    if "is_final" in table.c:
        # A later partial read (or a purged bucket read back as zeros) never replaces
        # a value the archive already holds as final.
        where = sa.or_(table.c.is_final.is_(sa.false()), stmt.excluded.is_final.is_(sa.true()))
    stmt = stmt.on_conflict_do_update(index_elements=key, set_=values, where=where)
    _STATEMENTS[(table.name, dialect)] = stmt
    return stmt  # type: ignore[no-any-return]


def upsert_rows(*, conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert or update `rows` (all columns given) inside the caller's transaction.

    Uses the driver's executemany path: psycopg pipelines it, sqlite3 prepares once.
    Returns the number of rows sent.
    """
    if not rows:
        return 0
    conn.execute(_statement(table, conn.dialect.name), rows)
    return len(rows)
