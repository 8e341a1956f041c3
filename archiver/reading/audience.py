"""`archiver report --metric peak-viewers|views-started`: the audience per period or stream."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.datasets import ACCOUNT_VIEWER_STATS, STREAM_VIEWER_STATS
from archiver.errors import InputError
from archiver.reading.coverage import FINAL, NOT_ARCHIVED, Coverage, parse_time
from archiver.reading.report import UNIT_OF, bind_time, label, machine
from archiver.store.viewer_stats import ACCOUNT_KEY
from archiver.timeutil import Resolution, ceil, floor, next_start

# The view column each metric reads; it also names the value in CSV and JSON.
COLUMN = {"peak-viewers": "peak_viewers", "views-started": "views_started"}
# The 5-minute column the view's figure is made of (the most of, or the sum).
RAW = {"peak-viewers": "active_viewers", "views-started": "views_started"}
HEADING = {"peak-viewers": "peak viewers", "views-started": "views started"}
MEANING = {
    "peak-viewers": "peak concurrent viewers: the most watching at once, at the end of any "
    "5-minute period",
    "views-started": "views started: the views that began, summed",
}
PERIOD = timedelta(minutes=5)


@dataclass(frozen=True)
class AudienceRow:
    """One period's audience; a run of periods never archived is one row up to `through`."""

    period: str
    through: str | None
    value: int | None
    state: str


@dataclass(frozen=True)
class AudienceStream:
    """One stream's audience over the report's days."""

    rank: int
    stream: str
    value: int


def combine(metric: str, values: list[int]) -> int:
    """Periods joined: the highest peak (peaks never add up), or the sum of views started."""
    return max(values, default=0) if metric == "peak-viewers" else sum(values)


def check_stream(conn: Connection, stream: str) -> None:
    """An InputError unless the archive tracks `stream` or holds viewer statistics of it."""
    known = conn.execute(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM tracked_streams WHERE stream_name = :s) "
            "OR EXISTS (SELECT 1 FROM stream_viewer_stats WHERE stream_name = :s)"
        ),
        {"s": stream},
    ).scalar_one()
    if not known:
        raise InputError(
            f"no stream {stream!r} in the archive (see `archiver streams list`); nothing to report"
        )


def read_coverage(conn: Connection, stream: str | None) -> Coverage:
    """What the viewer reads of a scope fetched (its first row to its last read) and settled
    (to its watermark). Where the first read began is not recorded: before the first row the
    archive cannot tell a period without viewers from one never read."""
    table, scope = (
        ("account_viewer_stats", "")
        if stream is None
        else ("stream_viewer_stats", " WHERE stream_name = :s")
    )
    keys = {
        "d": ACCOUNT_VIEWER_STATS.dataset if stream is None else STREAM_VIEWER_STATS.dataset,
        "s": ACCOUNT_KEY if stream is None else stream,
    }
    first, last = conn.execute(
        sa.text(f"SELECT MIN(period_start), MAX(period_start) FROM {table}{scope}"), keys
    ).one()
    mark = conn.execute(
        sa.text(
            "SELECT watermark, read_at FROM viewer_reads WHERE dataset = :d AND stream_name = :s"
        ),
        keys,
    ).first()
    if first is None:
        return Coverage(fetched=(), final=())
    start = parse_time(first)
    ends = [parse_time(last) + PERIOD]
    final: tuple[tuple[datetime, datetime], ...] = ()
    if mark is not None:
        watermark = parse_time(mark[0])
        ends += [watermark, parse_time(mark[1])]
        final = ((start, watermark),) if watermark > start else ()
    return Coverage(fetched=((start, max(ends)),), final=final)


def _found(
    conn: Connection,
    stream: str | None,
    unit: Resolution,
    metric: str,
    first: datetime,
    last: datetime,
) -> dict[datetime, tuple[int, bool]]:
    """The view's rows meeting `[first, last)`: period start -> (value, all final)."""
    column = "hour" if unit is Resolution.HOUR else "day"
    view = (
        f"{'account' if stream is None else 'stream'}_{'hourly' if column == 'hour' else 'daily'}"
    )
    where = f"{column} >= :start AND {column} < :stop"
    params: dict[str, Any] = {"start": bind_time(conn, first), "stop": bind_time(conn, last)}
    if stream is not None:
        where += " AND stream_name = :stream"
        params["stream"] = stream
    query = sa.text(
        f"SELECT {column}, {COLUMN[metric]}, is_final FROM {view}_viewers WHERE {where}"
    )
    rows: dict[datetime, list[tuple[int, bool]]] = {}
    for at, value, final in conn.execute(query, params):
        # A month is read from its days: the views stop at the day.
        rows.setdefault(floor(parse_time(at), unit), []).append((int(value), bool(final)))
    return {
        at: (combine(metric, [v for v, _ in parts]), all(f for _, f in parts))
        for at, parts in rows.items()
    }


def audience_report(
    conn: Connection, *, stream: str | None, start: datetime, stop: datetime, by: str, metric: str
) -> list[AudienceRow]:
    """The audience (`metric`) of every period meeting `[start, stop)`, a stream or the account."""
    if stream is not None:
        check_stream(conn, stream)
    unit = UNIT_OF[by]
    first, last = floor(start, unit), ceil(stop, unit)
    found = _found(conn, stream, unit, metric, first, last)
    covered = read_coverage(conn, stream)
    rows: list[AudienceRow] = []
    current = first
    while current < last:
        following = next_start(current, unit)
        value = found.get(current)
        state = covered.state(current, following, None if value is None else value[1])
        if state == NOT_ARCHIVED:
            previous = rows[-1] if rows else None
            if previous is not None and previous.state == NOT_ARCHIVED:
                rows[-1] = AudienceRow(previous.period, label(current, unit), None, state)
            else:
                rows.append(AudienceRow(label(current, unit), label(current, unit), None, state))
        else:
            # No row where the archive read the period: nobody watched.
            rows.append(AudienceRow(label(current, unit), None, value[0] if value else 0, state))
        current = following
    return rows


def top_audience(
    conn: Connection, *, start: datetime, stop: datetime, top: int, metric: str
) -> tuple[list[AudienceStream], datetime, datetime]:
    """The `top` streams by `metric` over the whole days meeting `[start, stop)`."""
    first, last = floor(start, Resolution.DAY), ceil(stop, Resolution.DAY)
    total = "MAX" if metric == "peak-viewers" else "SUM"
    # What stream_daily_viewers gives over these days (each stream's highest 5-minute end, or
    # its sum), read through the key instead: the view can only find a range of days by
    # scanning every row of every stream (19 s for a year of 1,000 streams on SQLite), the
    # key finds each stream's range (0.5 s). The names come one seek at a time, as the key
    # sorts them.
    query = sa.text(
        "WITH RECURSIVE names(name) AS ("
        " SELECT MIN(stream_name) FROM stream_viewer_stats"
        " UNION ALL SELECT (SELECT MIN(stream_name) FROM stream_viewer_stats"
        " WHERE stream_name > names.name) FROM names WHERE names.name IS NOT NULL) "
        f"SELECT name, value FROM (SELECT name, (SELECT {total}({RAW[metric]}) "
        "FROM stream_viewer_stats s WHERE s.stream_name = names.name "
        "AND s.period_start >= :start AND s.period_start < :stop) AS value "
        "FROM names WHERE name IS NOT NULL) ranked WHERE value IS NOT NULL "
        "ORDER BY value DESC, name LIMIT :top"
    )
    params = {"start": bind_time(conn, first), "stop": bind_time(conn, last), "top": top}
    rows = [
        AudienceStream(rank, name, int(value))
        for rank, (name, value) in enumerate(conn.execute(query, params), start=1)
    ]
    return rows, first, last


def _named(rows: list[Any], metric: str) -> list[dict[str, Any]]:
    """Records with the value named by what it is (`peak_viewers`, `views_started`)."""
    return [{COLUMN[metric] if k == "value" else k: v for k, v in asdict(r).items()} for r in rows]


def render_audience(rows: list[AudienceRow], metric: str, by: str, scope: str, fmt: str) -> str:
    """Periods as a table saying what the figure is, or as CSV/JSON with exact integers."""
    if fmt != "table":
        return machine(_named(rows, metric), fmt)
    per = "per UTC " + by
    lines = [
        f"{MEANING[metric]}; {scope}, {per}",
        f"{'period (UTC)':<26} {HEADING[metric]:>14}  note",
    ]
    for row in rows:
        if row.state == NOT_ARCHIVED:
            span = row.period if row.through == row.period else f"{row.period} .. {row.through}"
            lines.append(f"{span:<26} {'-':>14}  not archived")
            continue
        note = "" if row.state == FINAL else row.state
        lines.append(f"{row.period:<26} {row.value:>14,}  {note}".rstrip())
    whole = combine(metric, [r.value or 0 for r in rows])
    name = "peak of the range" if metric == "peak-viewers" else "total"
    note = "incomplete: see the notes above" if any(r.state != FINAL for r in rows) else ""
    lines.append(f"{name:<26} {whole:>14,}  {note}".rstrip())
    return "\n".join(lines)


def render_audience_streams(
    rows: list[AudienceStream], first: datetime, last: datetime, metric: str, fmt: str
) -> str:
    """The stream ranking by audience, saying what the figure is, or as CSV/JSON."""
    if fmt != "table":
        return machine(_named(rows, metric), fmt)
    days = f"{label(first, Resolution.DAY)} to {label(last - timedelta(days=1), Resolution.DAY)}"
    lines = [f"{'#':>3}  {'stream':<40} {HEADING[metric]:>14}"]
    lines += [f"{r.rank:>3}  {r.stream:<40} {r.value:>14,}" for r in rows]
    lines.append(f"{MEANING[metric]}; over the whole UTC days {days}")
    return "\n".join(lines)
