"""One bulk, dialect-aware upsert path for every archive table.

`INSERT ... ON CONFLICT DO UPDATE` on both databases, through each driver's fastest bulk
path: sqlite3's `executemany` of one prepared statement, and on PostgreSQL a `COPY` into a
temporary table followed by one `INSERT ... SELECT ... ON CONFLICT` (plain `executemany` for
small batches, where the extra statements would cost more than they save). Rows carry every
column; times are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.store.rollup import feeds_rollups, refresh_rollups, serialise_writers
from archiver.store.tables import metadata
from archiver.store.timecolumn import SQLITE_TIME_FORMAT

if TYPE_CHECKING:
    from archiver.store.owed import Owed

COPY_THRESHOLD = 200


@dataclass(frozen=True)
class _Statements:
    columns: tuple[str, ...]
    time_columns: frozenset[str]
    bool_columns: frozenset[str]
    insert: str
    temp: str = ""
    create_temp: str = ""
    copy: str = ""
    insert_from_temp: str = ""


def _conflict_clause(table: sa.Table, source: str) -> str:
    key = [c.name for c in table.primary_key.columns]
    values = [c.name for c in table.columns if c.name not in key]
    assignments = ", ".join(f"{name} = {source}.{name}" for name in values)
    clause = f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments}"
    if "is_final" in table.c:
        # A later partial read (or a purged bucket read back as zeros) never replaces a value
        # the archive already holds as final.
        clause += f" WHERE NOT {table.name}.is_final OR {source}.is_final"
    return clause


@cache
def _statements(table_name: str, dialect: str) -> _Statements:
    table = metadata.tables[table_name]
    columns = tuple(c.name for c in table.columns)
    times = frozenset(c.name for c in table.columns if isinstance(c.type, sa.TypeDecorator))
    bools = frozenset(c.name for c in table.columns if isinstance(c.type, sa.Boolean))
    names = ", ".join(columns)
    conflict = _conflict_clause(table, "excluded")
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in columns)
        return _Statements(
            columns, times, bools, f"INSERT INTO {table_name} ({names}) VALUES ({marks}){conflict}"
        )
    if dialect == "postgresql":
        marks = ", ".join("%s" for _ in columns)
        temp = f"_upsert_{table_name}"
        return _Statements(
            columns,
            times,
            bools,
            insert=f"INSERT INTO {table_name} ({names}) VALUES ({marks}){conflict}",
            temp=temp,
            create_temp=f"CREATE TEMPORARY TABLE IF NOT EXISTS {temp} "
            f"(LIKE {table_name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
            copy=f"COPY {temp} ({names}) FROM STDIN",
            insert_from_temp=f"INSERT INTO {table_name} ({names}) SELECT {names} FROM {temp}"
            f"{conflict}",
        )
    raise NotImplementedError(f"no upsert for the {dialect} dialect")


def _sqlite_time(value: datetime) -> str:
    # The text form UtcDateTime writes and reads on SQLite.
    return value.astimezone(UTC).strftime(SQLITE_TIME_FORMAT)


def _tuples(
    rows: Sequence[Mapping[str, Any]], plan: _Statements, dialect: str
) -> list[tuple[Any, ...]]:
    columns = plan.columns
    if dialect != "sqlite":
        for row in rows:
            for name in plan.time_columns:
                value = row[name]
                if value is not None and value.tzinfo is None:
                    raise ValueError(f"naive datetime in {name}")
        return [tuple(row[c] for c in columns) for row in rows]
    # Rows of one response share a handful of distinct times: convert each once.
    texts: dict[datetime, str] = {}
    converted = [
        (i, name in plan.time_columns)
        for i, name in enumerate(columns)
        if name in plan.time_columns or name in plan.bool_columns
    ]
    result = []
    for row in rows:
        values = [row[c] for c in columns]
        for index, is_time in converted:
            value = values[index]
            if value is None:
                continue
            if is_time:
                text = texts.get(value)
                if text is None:
                    if value.tzinfo is None:
                        raise ValueError(f"naive datetime in {columns[index]}")
                    text = texts[value] = _sqlite_time(value)
                values[index] = text
            else:
                values[index] = int(value)
        result.append(tuple(values))
    return result


def upsert_rows(
    *,
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    owed: Owed | None = None,
) -> int:
    """Insert or update `rows` (every column given) inside the caller's transaction; the
    rollups they feed are refreshed now, or owed to `owed` (refreshed before the commit).

    Returns the number of rows sent.
    """
    if not rows:
        return 0
    dialect = conn.dialect.name
    plan = _statements(table.name, dialect)
    values = _tuples(rows, plan, dialect)
    if owed is None or not owed.locked:
        serialise_writers(conn, table.name)
        if owed is not None and feeds_rollups(table.name):
            owed.locked = True
    if dialect == "postgresql" and len(values) >= COPY_THRESHOLD:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute(plan.create_temp)
            with cursor.copy(plan.copy) as copy:
                for value in values:
                    copy.write_row(value)
            cursor.execute(plan.insert_from_temp)
            cursor.execute(f"TRUNCATE {plan.temp}")
    else:
        conn.exec_driver_sql(plan.insert, values)
    # Same transaction: a rollup never disagrees with the rows it sums.
    if owed is None:
        refresh_rollups(conn, table.name, rows)
    else:
        owed.rows(table.name, rows)
    return len(values)
