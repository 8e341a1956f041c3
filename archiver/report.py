"""Reading the archive without writing SQL: `archiver export` (and the time text of both)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.errors import InputError
from archiver.store.tables import ROLLUP_TABLES, metadata
from archiver.text import csv_cell
from archiver.timeutil import utc

VIEWS = (
    "stream_daily_usage",
    "stream_monthly_usage",
    "account_daily_usage",
    "account_monthly_usage",
    "country_daily_usage",
)
# Rollups are the views' internals, not part of the archive's interface.
EXPORTABLE = tuple(sorted(set(metadata.tables) - {t.name for t in ROLLUP_TABLES})) + VIEWS

# How UtcDateTime stores times in SQLite, and so how SQLite views return them.
_SQLITE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _is_time(value: Any) -> bool:
    return isinstance(value, datetime) or (
        isinstance(value, str) and _SQLITE_TIME.fullmatch(value) is not None
    )


def _as_text(value: Any) -> str:
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def export_rows(conn: Connection, table: str) -> Iterator[dict[str, Any]]:
    """Every row of a table or view, streamed."""
    if table not in EXPORTABLE:
        raise InputError(f"unknown table {table!r}: use one of {', '.join(EXPORTABLE)}")
    result = conn.execution_options(stream_results=True, yield_per=5000).execute(
        sa.text(f"SELECT * FROM {table}")
    )
    for row in result:
        yield {k: _json_value(k, v) for k, v in row._mapping.items()}


def _json_value(name: str, value: Any) -> Any:
    # SQLite returns booleans as 0/1 (views carry no column types): the same on both databases.
    if name == "is_final" and value is not None:
        return bool(value)
    return _as_text(value) if _is_time(value) else value


def _csv_bool(value: Any) -> Any:
    # As JSON spells them, not Python's True/False.
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def write_export(rows: Iterator[dict[str, Any]], fmt: str, stream: TextIO) -> int:
    """Write rows as CSV (with a header, formula-like text neutralised) or JSON lines;
    returns how many."""
    count = 0
    writer: csv.DictWriter[str] | None = None
    for row in rows:
        if fmt == "jsonl":
            stream.write(json.dumps(row) + "\n")
        else:
            if writer is None:
                writer = csv.DictWriter(stream, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            # Stream names come from publishers: `=HYPERLINK(...` must stay text.
            writer.writerow({k: csv_cell(_csv_bool(v)) for k, v in row.items()})
        count += 1
    return count
