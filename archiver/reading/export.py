"""Reading the archive without writing SQL: `archiver export` (and the time text of both)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.datasets import DECLARED
from archiver.errors import InputError
from archiver.store.tables import ROLLUP_TABLES, metadata
from archiver.text import csv_cell
from archiver.timeutil import utc

# Each dataset's views, as its declaration lists them.
VIEWS = tuple(view for declared in DECLARED for view in declared.views)
# Rollups are the views' internals, not part of the archive's interface.
EXPORTABLE = tuple(sorted(set(metadata.tables) - {t.name for t in ROLLUP_TABLES})) + VIEWS
# The names of the columns that hold true or false: every boolean column of the tables, and the
# one views make of their own (`reconciliation.gap_recorded`). SQLite returns booleans as 0/1
# and its views carry no column types: for an untyped column the name decides (`_boolean`),
# so both databases spell them alike, in CSV and JSON lines.
BOOLEANS = frozenset(
    {c.name for t in metadata.tables.values() for c in t.columns if isinstance(c.type, sa.Boolean)}
    | {"gap_recorded"}
)


def _as_text(value: Any) -> str:
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


class Export:
    """A table's rows as `archiver export` writes them, streamed. JSON values get each
    column's conversion chosen once, from its type (its name where it has none) and first
    value; CSV is formatted by the database itself (COPY on PostgreSQL, SQL on SQLite)."""

    def __init__(self, conn: Connection, table: str) -> None:
        self.conn = conn
        self.table = table

    def __iter__(self) -> Iterator[dict[str, Any]]:
        kinds = {c["name"]: c["type"] for c in sa.inspect(self.conn).get_columns(self.table)}
        result = self.conn.execution_options(stream_results=True, yield_per=5000).execute(
            sa.text(f"SELECT * FROM {self.table}")
        )
        columns = list(result.keys())
        converters: list[Callable[[Any], Any] | None] = [None] * len(columns)
        for row in result:
            values = list(row)
            for i, value in enumerate(values):
                if value is None:
                    continue
                convert = converters[i]
                if convert is None:
                    name = columns[i]
                    convert = converters[i] = _converter(_boolean(name, kinds.get(name)), value)
                values[i] = convert(value)
            yield dict(zip(columns, values, strict=True))


def _same(value: Any) -> Any:
    return value


def _boolean(name: str, kind: Any) -> bool:
    """Whether a column holds true or false: by its type, or by its name if it has none."""
    if isinstance(kind, sa.Boolean):
        return True
    return (kind is None or isinstance(kind, sa.types.NullType)) and name in BOOLEANS


def _converter(boolean: bool, first: Any) -> Callable[[Any], Any]:
    if boolean:
        return bool
    if isinstance(first, datetime):
        return _as_text
    return _same


def export_rows(conn: Connection, table: str) -> Export:
    """Every row of a table or view, streamed when written."""
    if table not in EXPORTABLE:
        raise InputError(f"unknown table {table!r}: use one of {', '.join(EXPORTABLE)}")
    return Export(conn, table)


def write_export(rows: Export, fmt: str, stream: TextIO) -> int:
    """Write rows as CSV (with a header, formula-like text neutralised) or JSON lines;
    returns how many."""
    count = 0
    if fmt == "jsonl":
        for row in rows:
            stream.write(json.dumps(row) + "\n")
            count += 1
        return count
    # One look at the columns decides every path: their types (SQLite's views leave them
    # untyped: a sample row tells) and whether floats send the table through Python.
    columns = [(c["name"], c["type"]) for c in sa.inspect(rows.conn).get_columns(rows.table)]
    if any(isinstance(kind, sa.Float) for _, kind in columns):
        # Each database spells floats its own way (SQLite to 15 digits, COPY `2` for 2.0):
        # such tables (sync_runs, a few rows a day) are written as JSON writes them.
        return _python_csv(rows.conn, rows.table, dict(columns), stream)
    if rows.conn.dialect.name == "postgresql":
        return _copy_csv(rows.conn, rows.table, columns, stream)
    return _sqlite_csv(rows.conn, rows.table, columns, stream)


def _spelling(name: str, kind: Any, sample: Any = 0) -> str:
    """How a column's cells are spelt: "bool", "time", "text" or "as-is" (numbers). An
    untyped column (a SQLite view's) is text unless its sample value is a number."""
    if _boolean(name, kind):
        return "bool"
    if isinstance(kind, sa.DateTime):
        return "time"
    if isinstance(kind, sa.String) or (
        isinstance(kind, sa.types.NullType) and not isinstance(sample, int | float)
    ):
        return "text"
    return "as-is"


def _python_cell(boolean: bool, value: Any) -> Any:
    if value is None:
        return None
    if boolean or isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _as_text(value)
    return csv_cell(value)


def _python_csv(conn: Connection, table: str, kinds: dict[str, Any], stream: TextIO) -> int:
    """CSV written row by row by Python's csv writer (the slow path, for small tables)."""
    result = conn.execution_options(stream_results=True, yield_per=5000).execute(
        sa.text(f"SELECT * FROM {table}")
    )
    names = list(result.keys())
    booleans = [_boolean(name, kinds.get(name)) for name in names]
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(names)
    count = 0
    for row in result:
        writer.writerow([_python_cell(b, v) for b, v in zip(booleans, row, strict=True)])
        count += 1
    return count


# PostgreSQL spellings of the CSV cells: booleans as JSON spells them, UTC times with a `Z`,
# formula-like text neutralised (as `archiver.text.csv_cell` does), empty text as an empty
# cell (COPY would write `""` to tell it from NULL; csv.writer writes both alike).
_PG_TRUE_FALSE = "CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"
_PG_TIME = "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
# The first character's code (- = + @ tab CR): half the server's time of a regex on each cell.
# `ascii()` fails on a non-ASCII first character in a multibyte encoding other than UTF8
# (EUC_JP, ...): a database in one keeps the regex.
_PG_CELL = "CASE WHEN ascii({c}) IN (45, 61, 43, 64, 9, 13) THEN '''' || {c} ELSE {c} END"
_PG_CELL_ANY_ENCODING = "CASE WHEN {c} ~ '^[-=+@\\t\\r]' THEN '''' || {c} ELSE {c} END"


def _copy_csv(conn: Connection, table: str, columns: list[Any], stream: TextIO) -> int:
    """CSV formatted by PostgreSQL itself (COPY), with the same spellings as the other paths."""
    raw: Any = conn.connection.driver_connection
    utf8 = raw.info.parameter_status("server_encoding") == "UTF8"  # reported at connect
    cell = _PG_CELL if utf8 else _PG_CELL_ANY_ENCODING
    exprs = []
    for name, kind in columns:
        quoted = f'"{name}"'
        spelling = _spelling(name, kind)
        if spelling == "bool":
            expr = _PG_TRUE_FALSE.format(c=quoted)
        elif spelling == "time":
            expr = _PG_TIME.format(c=quoted)
        elif spelling == "text":
            # Stream names come from publishers: `=HYPERLINK(...` must stay text.
            expr = f"NULLIF({cell.format(c=quoted)}, '')"
        else:
            expr = quoted
        exprs.append(f"{expr} AS {quoted}")
    query = f"COPY (SELECT {', '.join(exprs)} FROM {table}) TO STDOUT WITH (FORMAT csv, HEADER)"
    with raw.cursor() as cursor:
        if not utf8:
            # The lines are read as UTF-8 whatever the database's own encoding.
            cursor.execute("SET LOCAL client_encoding = 'UTF8'")
        with cursor.copy(query) as copy:
            for chunk in copy:
                stream.write(bytes(chunk).decode("utf-8"))
        # COPY's own count: a line break inside a quoted cell is not a row.
        return int(cursor.rowcount)


# SQLite builds each CSV line itself (printf, which spells NULL as an empty cell), so rows go
# from the cursor to the file as ready text: csv.writer over tuples was the slowest step.
# Text is quoted as csv.writer's QUOTE_MINIMAL quotes it (a comma, a quote or a line break;
# quotes doubled) and neutralised as `archiver.text.csv_cell` does; the GLOBs keep the common
# case, a plain name, to one cheap test.
_SQLITE_TRUE_FALSE = "CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"
_SQLITE_NEUTRAL = (
    "CASE WHEN typeof({c}) = 'text' AND substr({c}, 1, 1) IN ('=', '+', '-', '@', char(9), "
    "char(13)) THEN '''' || {c} ELSE {c} END"
)
_SQLITE_QUOTED = (
    "CASE WHEN instr({c}, ',') OR instr({c}, '\"') OR instr({c}, char(10)) "
    "OR instr({c}, char(13)) THEN '\"' || replace({c}, '\"', '\"\"') || '\"' ELSE {c} END"
)
_SQLITE_TEXT = (
    "CASE WHEN {c} GLOB '*[,\"' || char(10) || char(13) || ']*' "
    "OR {c} GLOB '[-=+@' || char(9) || char(13) || ']*' THEN {slow} ELSE {c} END"
)


def _sqlite_cell(name: str, spelling: str) -> str:
    """The SQL of one CSV cell: booleans as JSON spells them, text neutralised and quoted,
    numbers and times (RFC 3339 text since migration 0004) as they are."""
    quoted = f'"{name}"'
    if spelling == "bool":
        return _SQLITE_TRUE_FALSE.format(c=quoted)
    if spelling == "text":
        slow = _SQLITE_QUOTED.format(c=f"({_SQLITE_NEUTRAL.format(c=quoted)})")
        return _SQLITE_TEXT.format(c=quoted, slow=slow)
    return quoted


def _sqlite_csv(conn: Connection, table: str, columns: list[Any], stream: TextIO) -> int:
    """CSV from SQLite, each line built by SQLite."""
    sample = conn.exec_driver_sql(f"SELECT * FROM {table} LIMIT 1").first()
    cells = [
        _sqlite_cell(name, _spelling(name, kind, sample[i] if sample else None))
        for i, (name, kind) in enumerate(columns)
    ]
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([name for name, _ in columns])
    stream.write(header.getvalue())
    raw: Any = conn.connection.driver_connection
    line = ",".join(["%s"] * len(cells))
    cursor = raw.execute(f"SELECT printf('{line}', {', '.join(cells)}) FROM {table}")
    count = 0
    while batch := cursor.fetchmany(20000):
        stream.write("\n".join([text for (text,) in batch]))
        stream.write("\n")
        count += len(batch)
    return count
