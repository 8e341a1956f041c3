"""Reading the archive without writing SQL: `archiver report` and `archiver export`."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.errors import InputError
from archiver.store.tables import metadata
from archiver.text import csv_cell
from archiver.timeutil import utc

VIEWS = (
    "stream_daily_usage",
    "stream_monthly_usage",
    "account_daily_usage",
    "account_monthly_usage",
    "country_daily_usage",
)
EXPORTABLE = tuple(sorted(metadata.tables)) + VIEWS

# (source, time column, extra filter) per --by, for one stream or the account.
_SOURCES = {
    ("hour", True): ("stream_usage", "period_start", "resolution = 'Hour'"),
    ("day", True): ("stream_daily_usage", "day", None),
    ("month", True): ("stream_monthly_usage", "month", None),
    ("hour", False): ("account_usage", "period_start", "resolution = 'Hour'"),
    ("day", False): ("account_daily_usage", "day", None),
    ("month", False): ("account_monthly_usage", "month", None),
}


def _bind_time(conn: Connection, value: datetime) -> Any:
    # Views on SQLite return the stored text form; compare with the same form.
    if conn.dialect.name == "sqlite":
        return utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")
    return utc(value)


# How SQLAlchemy stores times in SQLite, and so how SQLite views return them.
_SQLITE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


def _is_time(value: Any) -> bool:
    return isinstance(value, datetime) or (
        isinstance(value, str) and _SQLITE_TIME.fullmatch(value) is not None
    )


def _as_text(value: Any) -> str:
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    if _is_time(text):
        return text[:10] + "T" + text[11:19] + "Z"
    return text


def usage_report(
    conn: Connection, *, stream: str | None, start: datetime, stop: datetime, by: str
) -> list[dict[str, Any]]:
    """Bytes in and out per hour, day or month in `[start, stop)`, for a stream or the account."""
    source, column, condition = _SOURCES[(by, stream is not None)]
    where = [f"{column} >= :start", f"{column} < :stop"]
    params: dict[str, Any] = {"start": _bind_time(conn, start), "stop": _bind_time(conn, stop)}
    if condition:
        where.append(condition)
    if stream is not None:
        where.append("stream_name = :stream")
        params["stream"] = stream
    query = sa.text(
        f"SELECT {column} AS period, bytes_in, bytes_out FROM {source} "
        f"WHERE {' AND '.join(where)} ORDER BY {column}"
    )
    return [
        {"period": _as_text(period), "bytes_in": int(bytes_in), "bytes_out": int(bytes_out)}
        for period, bytes_in, bytes_out in conn.execute(query, params)
    ]


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """Rows as an aligned table, CSV or JSON."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=["period", "bytes_in", "bytes_out"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    lines = [f"{'period (UTC)':<21} {'bytes in':>22} {'bytes out':>22}"]
    for row in rows:
        lines.append(f"{row['period']:<21} {row['bytes_in']:>22,} {row['bytes_out']:>22,}")
    total_in = sum(r["bytes_in"] for r in rows)
    total_out = sum(r["bytes_out"] for r in rows)
    lines.append(f"{'total':<21} {total_in:>22,} {total_out:>22,}")
    return "\n".join(lines)


def export_rows(conn: Connection, table: str) -> Iterator[dict[str, Any]]:
    """Every row of a table or view, streamed."""
    if table not in EXPORTABLE:
        raise InputError(f"unknown table {table!r}: use one of {', '.join(EXPORTABLE)}")
    result = conn.execution_options(stream_results=True, yield_per=5000).execute(
        sa.text(f"SELECT * FROM {table}")
    )
    for row in result:
        yield {k: _json_value(v) for k, v in row._mapping.items()}


def _json_value(value: Any) -> Any:
    return _as_text(value) if _is_time(value) else value


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
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
        count += 1
    return count
