"""`report --metric` and the HTML page's viewer charts equal the simulator's viewers."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from archiver.reading.audience import audience_report, top_audience
from archiver.reading.html import html_report
from archiver.reading.report import FINAL
from tests.test_grafana import viewer_peaks
from tests.test_readme_sql import BACKFILL_AT, Rows, Truth, filled  # noqa: F401  (fixture)
from tests.test_usage_html import Figures

pytestmark = pytest.mark.e2e

# Whole days archived final, after every stream's first viewer (the simulator begins Nov 26).
START, STOP = datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


def _started(rows: Rows, width: int, key: str = "") -> dict[tuple[str, str], int]:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        sums[(r.get(key, ""), r["period_start"][:width])] += r["views_started"]
    return sums


def test_account_hours_and_days_equal_the_vendors_viewers(
    filled: tuple[Engine, Truth],  # noqa: F811
) -> None:
    engine, truth = filled
    account = truth("account_viewer_stats", "", "2026-11-27", "2026-12-01")
    with engine.connect() as conn:
        for by, width, stamp in (("hour", 13, ":00:00Z"), ("day", 10, "")):
            for metric, expected in (
                ("peak-viewers", viewer_peaks(account, width)),
                ("views-started", _started(account, width)),
            ):
                rows = audience_report(
                    conn, stream=None, start=START, stop=STOP, by=by, metric=metric
                )
                assert {r.state for r in rows} == {FINAL}
                # A period without a row had no viewers: 0, and said so.
                assert {r.period: r.value for r in rows} == {
                    r.period: expected.get(("", r.period.replace(stamp, "")), 0) for r in rows
                }
                assert len({r.value for r in rows}) > 2, "too few distinct figures to prove much"
        month = audience_report(
            conn, stream=None, start=START, stop=STOP, by="month", metric="peak-viewers"
        )
    assert month[0].value == max(viewer_peaks(account, 7).values())


def test_streams_ranked_and_reported_as_the_vendor_counted(
    filled: tuple[Engine, Truth],  # noqa: F811
) -> None:
    engine, truth = filled
    viewers = truth("stream_viewer_stats", "", "2026-11-27", "2026-12-01")
    peaks = viewer_peaks(viewers, 0, "stream_name")
    started = _started(viewers, 0, "stream_name")
    with engine.connect() as conn:
        by_peak, _, _ = top_audience(conn, start=START, stop=STOP, top=3, metric="peak-viewers")
        by_views, _, _ = top_audience(conn, start=START, stop=STOP, top=50, metric="views-started")
        (name, _), peak = max(peaks.items(), key=lambda kv: kv[1])
        days = audience_report(
            conn, stream=name, start=START, stop=STOP, by="day", metric="peak-viewers"
        )
    ranked = sorted(((s, p) for (s, _), p in peaks.items()), key=lambda sp: (-sp[1], sp[0]))
    assert [(r.stream, r.value) for r in by_peak] == ranked[:3]
    assert {r.stream: r.value for r in by_views} == {s: v for (s, _), v in started.items()}
    per_day = viewer_peaks([r for r in viewers if r["stream_name"] == name], 10)
    assert {r.period: r.value for r in days} == {
        r.period: per_day.get(("", r.period), 0) for r in days
    }
    assert max(r.value or 0 for r in days) == peak


def test_the_page_charts_the_vendors_peaks(filled: tuple[Engine, Truth]) -> None:  # noqa: F811
    engine, truth = filled
    account = truth("account_viewer_stats", "", "2026-11-27", "2026-12-01")
    with engine.connect() as conn:
        page = html_report(conn, start=START, stop=STOP, by="day", top=10, now=BACKFILL_AT)
    figures = Figures()
    figures.feed(page)
    peaks = viewer_peaks(account, 10)
    assert [(m["data-period"], int(m["data-value"])) for m in figures.marks["peak_viewers"]] == [
        (day, peak) for (_, day), peak in sorted(peaks.items())
    ]
    streams = viewer_peaks(
        truth("stream_viewer_stats", "", "2026-11-27", "2026-12-01"), 0, "stream_name"
    )
    ranked = sorted(((s, p) for (s, _), p in streams.items()), key=lambda sp: (-sp[1], sp[0]))
    got = [(m["data-stream-peak"], int(m["data-value"])) for m in figures.marks["stream-peak"]]
    assert got == ranked[:10]
