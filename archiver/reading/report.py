"""`archiver report`: usage per period or per stream, with what was and was not archived."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.errors import InputError
from archiver.reading.coverage import (
    FINAL,
    NOT_ARCHIVED,
    PARTIAL,
    SOME_NOT_ARCHIVED,
    coverage,
    parse_time,
)
from archiver.rules.plan import Policy
from archiver.store.timecolumn import SQLITE_TIME_FORMAT
from archiver.timeutil import Resolution, ceil, floor, format_iso, next_start, utc

# The states are spelt in archiver.reading.coverage; the report's callers read them here.
__all__ = ["FINAL", "NOT_ARCHIVED", "PARTIAL", "SOME_NOT_ARCHIVED"]

UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")

UNIT_OF = {"hour": Resolution.HOUR, "day": Resolution.DAY, "month": Resolution.MONTH}
_DAY_ROW = "CASE WHEN source = 'Day' THEN 1 ELSE 0 END"
# Per --by, for one stream or the account: (source, time column, extra filter, is_final,
# whether the row is the vendor's own figure for the whole period). A vendor row speaks for its
# period; a sum of archived parts is complete only where the archive covers the whole period.
# The resolutions whose archiving tells whether a period of --by was read at all.
_COVERING = {
    ("hour", True): ("Hour",),
    ("day", True): ("Hour", "Day"),
    ("month", True): ("Hour", "Day"),
    ("hour", False): ("Hour",),
    ("day", False): ("Hour", "Day"),
    ("month", False): ("Hour", "Day", "Month"),
}
_SOURCES = {
    ("hour", True): ("stream_usage", "period_start", "resolution = 'Hour'", "is_final", "1"),
    ("day", True): ("stream_daily_usage", "day", None, "is_final", _DAY_ROW),
    ("month", True): ("stream_monthly_usage", "month", None, "1", "0"),
    ("hour", False): ("account_usage", "period_start", "resolution = 'Hour'", "is_final", "1"),
    ("day", False): ("account_daily_usage", "day", None, "is_final", _DAY_ROW),
    ("month", False): ("account_monthly_usage", "month", None, "is_final", "1"),
}


@dataclass(frozen=True)
class PeriodRow:
    """One period of the report; a run of periods never archived is one row up to `through`."""

    period: str
    through: str | None
    bytes_in: int | None
    bytes_out: int | None
    state: str


@dataclass(frozen=True)
class StreamRow:
    """One stream's total over the report's days."""

    rank: int
    stream: str
    bytes_in: int
    bytes_out: int


def label(value: datetime, unit: Resolution) -> str:
    """`2026-11-26T14:00:00Z` for hours, `2026-11-26` for days, `2026-11` for months."""
    if unit is Resolution.HOUR:
        return format_iso(value)
    return value.strftime("%Y-%m-%d" if unit is Resolution.DAY else "%Y-%m")


def human_bytes(value: int) -> str:
    """Decimal units with three significant digits: `48.9 TB`."""
    amount = float(value)
    for unit in UNITS:
        if abs(amount) < 999.5 or unit == UNITS[-1]:
            return f"{value} B" if unit == "B" else f"{amount:.3g} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def bind_time(conn: Connection, value: datetime) -> Any:
    """`value` as raw SQL compares it: on SQLite the stored text form."""
    if conn.dialect.name == "sqlite":
        return utc(value).strftime(SQLITE_TIME_FORMAT)
    return utc(value)


def check_stream(conn: Connection, stream: str) -> None:
    """An InputError unless the archive tracks `stream` or holds rows of it."""
    known = conn.execute(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM tracked_streams WHERE stream_name = :s) "
            "OR EXISTS (SELECT 1 FROM stream_usage WHERE stream_name = :s)"
        ).bindparams(s=stream)
    ).scalar_one()
    if not known:
        raise InputError(
            f"no stream {stream!r} in the archive (see `archiver streams list`); nothing to report"
        )


def label_start(text: str, unit: Resolution) -> datetime:
    """The start of the period a `label` names."""
    if unit is Resolution.MONTH:
        text += "-01"
    return parse_time(text if unit is Resolution.HOUR else f"{text}T00:00:00Z")


def usage_report(
    conn: Connection,
    *,
    stream: str | None,
    start: datetime,
    stop: datetime,
    by: str,
    policy: Policy | None = None,
) -> list[PeriodRow]:
    """Bytes in and out of every period meeting `[start, stop)`, for a stream or the account."""
    if stream is not None:
        check_stream(conn, stream)
    unit = UNIT_OF[by]
    first, last = floor(start, unit), ceil(stop, unit)
    source, column, condition, final, whole = _SOURCES[(by, stream is not None)]
    where = [f"{column} >= :start", f"{column} < :stop"]
    params: dict[str, Any] = {"start": bind_time(conn, first), "stop": bind_time(conn, last)}
    if condition:
        where.append(condition)
    if stream is not None:
        where.append("stream_name = :stream")
        params["stream"] = stream
    query = sa.text(
        f"SELECT {column}, bytes_in, bytes_out, {final}, {whole} FROM {source} "
        f"WHERE {' AND '.join(where)}"
    )
    found = {
        parse_time(p): (int(i), int(o), bool(f), bool(w))
        for p, i, o, f, w in conn.execute(query, params)
    }
    covered = coverage(conn, stream, _COVERING[(by, stream is not None)], policy or Policy())
    rows: list[PeriodRow] = []
    current = first
    while current < last:
        following = next_start(current, unit)
        value = found.get(current)
        if value is not None and value[3]:
            # The vendor's own figure for the whole period: final exactly when it says so.
            state = FINAL if value[2] else PARTIAL
        else:
            state = covered.state(current, following, None if value is None else value[2])
        if state == NOT_ARCHIVED:
            previous = rows[-1] if rows else None
            if previous is not None and previous.state == NOT_ARCHIVED:
                rows[-1] = PeriodRow(previous.period, label(current, unit), None, None, state)
            else:
                rows.append(
                    PeriodRow(label(current, unit), label(current, unit), None, None, state)
                )
        else:
            # No row where the archive read the period: the vendor reported no traffic.
            bytes_in, bytes_out = value[:2] if value is not None else (0, 0)
            rows.append(PeriodRow(label(current, unit), None, bytes_in, bytes_out, state))
        current = following
    return rows


def top_streams(
    conn: Connection, *, start: datetime, stop: datetime, top: int
) -> tuple[list[StreamRow], datetime, datetime]:
    """The `top` streams by egress over the whole days meeting `[start, stop)`."""
    if top < 1:
        raise InputError("--top must be at least 1")
    first, last = floor(start, Resolution.DAY), ceil(stop, Resolution.DAY)
    # Whole months come from the monthly rollup (a month's figure is the sum of its days in
    # stream_daily_usage, the rule of both views), the days at either edge from the daily
    # view: a year's ranking sums 12 rows a stream, not 365.
    months_from = min(ceil(first, Resolution.MONTH), last)
    months_to = max(floor(last, Resolution.MONTH), months_from)
    parts = [
        "SELECT stream_name, bytes_in, bytes_out FROM stream_daily_usage "
        "WHERE day >= :start AND day < :months_from",
        "SELECT stream_name, bytes_in, bytes_out FROM stream_monthly_usage "
        "WHERE month >= :months_from AND month < :months_to",
        "SELECT stream_name, bytes_in, bytes_out FROM stream_daily_usage "
        "WHERE day >= :months_to AND day < :stop",
    ]
    query = sa.text(
        f"SELECT stream_name, SUM(bytes_in), SUM(bytes_out) FROM ({' UNION ALL '.join(parts)}) "
        "AS u GROUP BY stream_name ORDER BY SUM(bytes_out) DESC, stream_name LIMIT :top"
    )
    bounds = {"start": first, "months_from": months_from, "months_to": months_to, "stop": last}
    params: dict[str, Any] = {key: bind_time(conn, value) for key, value in bounds.items()}
    params["top"] = top
    rows = [
        StreamRow(rank, name, int(bytes_in), int(bytes_out))
        for rank, (name, bytes_in, bytes_out) in enumerate(conn.execute(query, params), start=1)
    ]
    return rows, first, last


def machine(records: list[dict[str, Any]], fmt: str) -> str:
    """Records as indented JSON, or as CSV with a header (nothing for no records)."""
    if fmt == "json":
        return json.dumps(records, indent=2)
    if not records:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().rstrip("\n")


def render_periods(rows: list[PeriodRow], fmt: str) -> str:
    """Periods as a table in human units, or as CSV/JSON with exact integers."""
    if fmt != "table":
        return machine([asdict(r) for r in rows], fmt)
    lines = [f"{'period (UTC)':<26} {'bytes in':>10} {'bytes out':>10}  note"]
    for row in rows:
        if row.state == NOT_ARCHIVED:
            span = row.period if row.through == row.period else f"{row.period} .. {row.through}"
            lines.append(f"{span:<26} {'-':>10} {'-':>10}  not archived")
            continue
        note = "" if row.state == FINAL else row.state
        assert row.bytes_in is not None
        assert row.bytes_out is not None
        lines.append(
            f"{row.period:<26} {human_bytes(row.bytes_in):>10} "
            f"{human_bytes(row.bytes_out):>10}  {note}".rstrip()
        )
    total_in = sum(r.bytes_in or 0 for r in rows)
    total_out = sum(r.bytes_out or 0 for r in rows)
    note = "incomplete: see the notes above" if any(r.state != FINAL for r in rows) else ""
    lines.append(
        f"{'total':<26} {human_bytes(total_in):>10} {human_bytes(total_out):>10}  {note}".rstrip()
    )
    return "\n".join(lines)


def render_streams(rows: list[StreamRow], first: datetime, last: datetime, fmt: str) -> str:
    """The stream ranking as a table in human units, or as CSV/JSON with exact integers."""
    if fmt != "table":
        return machine([asdict(r) for r in rows], fmt)
    days = f"{label(first, Resolution.DAY)} to {label(last - timedelta(days=1), Resolution.DAY)}"
    lines = [f"{'#':>3}  {'stream':<40} {'bytes in':>10} {'bytes out':>10}"]
    for row in rows:
        lines.append(
            f"{row.rank:>3}  {row.stream:<40} {human_bytes(row.bytes_in):>10} "
            f"{human_bytes(row.bytes_out):>10}"
        )
    lines.append(f"over the whole UTC days {days}")
    return "\n".join(lines)
