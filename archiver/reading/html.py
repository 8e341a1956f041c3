"""`archiver report --format html`: one self-contained page of inline SVG charts, no network."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.reading.audience import AudienceRow, AudienceStream, audience_report, top_audience
from archiver.reading.report import (
    FINAL,
    NOT_ARCHIVED,
    PARTIAL,
    SOME_NOT_ARCHIVED,
    UNIT_OF,
    PeriodRow,
    StreamRow,
    bind_time,
    human_bytes,
    label_start,
    top_streams,
    usage_report,
)
from archiver.rules.plan import Policy
from archiver.timeutil import Resolution, ceil, count_buckets, floor, format_iso, next_start, utc

Show = Callable[[int], str]
WIDTH = 960
BAR_AREA = 220
# Nothing may be fetched: the page must open from a file, offline, years from now.
CSP = "default-src 'none'; style-src 'unsafe-inline'"
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.bar { fill: #3869b1; } .bar.partial { fill: url(#hatch); stroke: #3869b1; }
.bar.some-not-archived { fill: #9db4d8; }
.not-archived { fill: #ddd; } .axis { stroke: #999; } text { font-size: 11px; fill: #333; }
.legend span { display: inline-block; margin-right: 16px; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: middle;
          margin-right: 4px; border: 1px solid #3869b1; }
"""


@dataclass(frozen=True)
class CountryRow:
    """One country's views and watch time over the report's days."""

    country: str
    views: int
    view_seconds: int


def countries(conn: Connection, *, start: datetime, stop: datetime) -> list[CountryRow]:
    """Views per country over the whole UTC days meeting `[start, stop)`, most first."""
    query = sa.text(
        "SELECT country, SUM(views), SUM(view_seconds) FROM country_daily_usage "
        "WHERE day >= :start AND day < :stop GROUP BY country ORDER BY SUM(views) DESC, country"
    )
    params = {
        "start": bind_time(conn, floor(start, Resolution.DAY)),
        "stop": bind_time(conn, ceil(stop, Resolution.DAY)),
    }
    return [CountryRow(c, int(v), int(s)) for c, v, s in conn.execute(query, params)]


Row = PeriodRow | AudienceRow


def _slots(row: Row, unit: Resolution) -> int:
    """How many periods a row stands for: a run never archived is as wide as it is long."""
    if row.through in (None, row.period):
        return 1
    assert row.through is not None
    stop = next_start(label_start(row.through, unit), unit)
    return count_buckets(label_start(row.period, unit), stop, unit)


def _count(value: int) -> str:
    return f"{value:,}"


def _series(
    rows: Sequence[Row], values: list[int], unit: Resolution, metric: str, title: str, show: Show
) -> str:
    """Bars per period; partial periods hatched, periods never archived as grey bands."""
    widths = [_slots(r, unit) for r in rows]
    step = (WIDTH - 60) / max(sum(widths), 1)
    top = max(values, default=0) or 1
    parts = [
        f'<svg class="chart series" data-metric="{metric}" width="{WIDTH}" '
        f'height="{BAR_AREA + 50}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="12">{escape(show(top))}</text>',
        f'<line class="axis" x1="55" y1="{BAR_AREA + 10}" x2="{WIDTH}" y2="{BAR_AREA + 10}"/>',
    ]
    slot = 0
    for row, value, slots in zip(rows, values, widths, strict=True):
        x = 58 + slot * step
        slot += slots
        width = max(slots * step - 2, 1)
        span = row.period if row.through in (None, row.period) else f"{row.period} to {row.through}"
        if row.state == NOT_ARCHIVED:
            parts.append(
                f'<rect class="not-archived" data-period="{escape(row.period)}" '
                f'data-through="{escape(row.through or row.period)}" data-state="{NOT_ARCHIVED}" '
                f'data-periods="{slots}" x="{x:.1f}" y="10" width="{width:.1f}" '
                f'height="{BAR_AREA}"><title>{escape(span)}: not archived</title></rect>'
            )
            continue
        height = BAR_AREA * value / top
        state = {PARTIAL: "partial", SOME_NOT_ARCHIVED: "some-not-archived"}.get(row.state, "final")
        note = "" if row.state == FINAL else f" ({row.state})"
        parts.append(
            f'<rect class="bar {state}" data-period="{escape(row.period)}" data-value="{value}" '
            f'data-state="{row.state}" x="{x:.1f}" y="{10 + BAR_AREA - height:.1f}" '
            f'width="{width:.1f}" height="{height:.1f}"><title>{escape(span)}: '
            f"{escape(show(value))}{escape(note)}</title></rect>"
        )
    if rows:
        parts.append(f'<text x="58" y="{BAR_AREA + 28}">{escape(rows[0].period)}</text>')
        parts.append(
            f'<text x="{WIDTH}" y="{BAR_AREA + 28}" text-anchor="end">'
            f"{escape(rows[-1].through or rows[-1].period)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _ranking(items: list[tuple[str, int, str]], kind: str) -> str:
    """Horizontal bars: (label, exact value, shown value) per item, largest first."""
    top = max((v for _, v, _ in items), default=0) or 1
    height = 22 * len(items) + 10
    parts = [f'<svg class="chart ranking" data-kind="{kind}" width="{WIDTH}" height="{height}">']
    for index, (label, value, shown) in enumerate(items):
        y = 5 + index * 22
        width = (WIDTH - 330) * value / top
        parts.append(
            f'<text x="0" y="{y + 14}">{escape(label[:40])}</text>'
            f'<rect class="bar" data-{kind}="{escape(label)}" data-value="{value}" x="240" '
            f'y="{y}" width="{width:.1f}" height="18"><title>{escape(label)}: {escape(shown)}'
            f"</title></rect>"
            f'<text x="{245 + width:.1f}" y="{y + 14}">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def render_page(
    *,
    rows: list[PeriodRow],
    unit: Resolution,
    ranking: list[StreamRow],
    viewers: list[CountryRow],
    peaks: list[AudienceRow],
    peak_ranking: list[AudienceStream],
    start: datetime,
    stop: datetime,
    made_at: datetime,
) -> str:
    """The whole page."""
    incomplete = [r for r in rows if r.state != FINAL]
    note = (
        f"{sum(1 for r in incomplete if r.state == PARTIAL)} partial period(s) (hatched), "
        f"{sum(1 for r in incomplete if r.state == SOME_NOT_ARCHIVED)} period(s) part of which "
        "was never archived (light, value of the archived part) and "
        f"{sum(1 for r in incomplete if r.state == NOT_ARCHIVED)} span(s) not archived (grey)"
        if incomplete
        else "every period final"
    )
    streams = [(r.stream, r.bytes_out, human_bytes(r.bytes_out)) for r in ranking]
    places = [(c.country, c.views, f"{c.views:,} views") for c in viewers]
    watched = [(r.stream, r.value, f"{r.value:,} at once") for r in peak_ranking]
    bytes_out = [r.bytes_out or 0 for r in rows]
    bytes_in = [r.bytes_in or 0 for r in rows]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            "<title>Streaming usage</title>",
            f"<style>{STYLE}</style></head><body>",
            "<h1>Streaming usage</h1>",
            # The one hatch pattern every chart's partial periods use.
            '<svg width="0" height="0" style="position:absolute"><defs><pattern id="hatch" '
            'width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            '<rect width="6" height="6" fill="#fff"/><line x1="0" y1="0" x2="0" y2="6" '
            'stroke="#3869b1" stroke-width="3"/></pattern></defs></svg>',
            f"<p>{escape(format_iso(start))} to {escape(format_iso(stop))} (UTC), made "
            f"{escape(format_iso(made_at))} by archiver. {escape(note)}.</p>",
            '<p class="legend"><span><i class="swatch" style="background:#3869b1"></i>final'
            '</span><span><i class="swatch" style="background:#fff"></i>partial</span>'
            '<span><i class="swatch" style="background:#9db4d8"></i>part not archived</span>'
            '<span><i class="swatch" style="background:#ddd;border-color:#ddd"></i>'
            "not archived</span></p>",
            "<h2>Egress (bytes out)</h2>",
            _series(rows, bytes_out, unit, "bytes_out", "egress over time", human_bytes),
            "<h2>Ingest (bytes in)</h2>",
            _series(rows, bytes_in, unit, "bytes_in", "ingest over time", human_bytes),
            "<h2>Peak concurrent viewers (account)</h2>",
            "<p>The most viewers watching at once at the end of any 5-minute period of each "
            "period (not a sum).</p>",
            _series(
                peaks,
                [r.value or 0 for r in peaks],
                unit,
                "peak_viewers",
                "peak concurrent viewers over time",
                _count,
            ),
            f"<h2>Top {len(ranking)} streams by egress</h2>",
            _ranking(streams, "stream") if streams else "<p>No stream traffic archived.</p>",
            "<h2>Viewers by country</h2>",
            _ranking(places, "country") if places else "<p>No viewers archived.</p>",
            f"<h2>Top {len(peak_ranking)} streams by peak concurrent viewers</h2>",
            _ranking(watched, "stream-peak") if watched else "<p>No viewers archived.</p>",
            "</body></html>",
        ]
    )


def html_report(
    conn: Connection,
    *,
    start: datetime,
    stop: datetime,
    by: str,
    top: int,
    now: datetime,
    policy: Policy | None = None,
) -> str:
    """The account's usage and peak viewers per `by` period, top streams (by egress and by
    peak viewers) and countries as one HTML page."""
    rows = usage_report(conn, stream=None, start=start, stop=stop, by=by, policy=policy)
    ranking, _, _ = top_streams(conn, start=start, stop=stop, top=top)
    viewers = countries(conn, start=start, stop=stop)
    peaks = audience_report(conn, stream=None, start=start, stop=stop, by=by, metric="peak-viewers")
    peak_ranking, _, _ = top_audience(conn, start=start, stop=stop, top=top, metric="peak-viewers")
    return render_page(
        rows=rows,
        unit=UNIT_OF[by],
        ranking=ranking,
        viewers=viewers,
        peaks=peaks,
        peak_ranking=peak_ranking,
        start=utc(start),
        stop=utc(stop),
        made_at=now,
    )
