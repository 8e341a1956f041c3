"""Every statement of `report`, the HTML page and `status` is true of a simulated archive."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.reading.html import html_report
from archiver.reading.report import (
    FINAL,
    NOT_ARCHIVED,
    PARTIAL,
    SOME_NOT_ARCHIVED,
    PeriodRow,
    usage_report,
)
from archiver.reading.status import read_status
from archiver.rules.plan import Policy
from archiver.simulator import SimConfig, Simulator
from archiver.timeutil import Resolution, format_iso
from tests.harness import Harness, truth
from tests.simhelpers import TOKEN

pytestmark = pytest.mark.e2e  # days of cycles against the simulator

H = timedelta(hours=1)
D = timedelta(days=1)
# The archive's first cycle; the vendor then holds per-stream and hourly data from 7 days back
# (asked from 02:00 on Nov 13: the hour of margin, rounded up), the account's days 90 back.
T0 = datetime(2026, 11, 20, 0, 2, tzinfo=UTC)
LAST = T0 + 2 * D
STREAM = "stream-0001"


@pytest.fixture
def archived(engine: Engine) -> Iterator[tuple[Engine, httpx.Client]]:
    """Cycles every six hours from T0 to LAST against the simulator; its truth client."""
    # A vendor that keeps Day data 90 days, as the 2021 guide said: a span it never held.
    config = SimConfig(
        streams=3, seed=11, origin=datetime(2026, 10, 1, tzinfo=UTC), day_retention_days=90
    )
    with Simulator(config, token=TOKEN, start=T0) as sim:
        settings = {"streams": [STREAM], "discovery": False, "day_retention_days": 90}
        harness = Harness(sim, engine, settings)
        moment = T0
        while moment <= LAST:
            report = harness.cycle(moment)
            assert report.ok, report.errors
            moment += 6 * H
        with httpx.Client(base_url=sim.url) as http:
            yield engine, http


def truth_by_period(
    http: httpx.Client, dataset: str, resolution: Resolution, stream: str | None
) -> dict[str, int]:
    rows = truth(http, dataset, resolution, T0 - 120 * D, LAST + D)
    return {
        format_iso(datetime.fromisoformat(r["period_start"].replace("Z", "+00:00"))): int(
            r["bytes_out"]
        )
        for r in rows
        if r.get("stream_name") in (stream, None)
    }


def test_hours_fetched_without_traffic_are_zero_and_final(
    archived: tuple[Engine, httpx.Client],
) -> None:
    engine, http = archived
    true = truth_by_period(http, "stream_usage", Resolution.HOUR, STREAM)
    with engine.connect() as conn:
        rows = usage_report(conn, stream=STREAM, start=T0 - 8 * D, stop=LAST + D, by="hour")
    # The first archived hour is the oldest the vendor still held (its exact line: README,
    # "The oldest hour the vendor holds is saved").
    assert rows[0] == PeriodRow(
        "2026-11-12T00:00:00Z", "2026-11-13T00:00:00Z", None, None, NOT_ARCHIVED
    )
    first_fetched = datetime(2026, 11, 13, 1, tzinfo=UTC)
    states = {r.period: r for r in rows[1:]}
    first_row = min(p for p in true if p >= format_iso(first_fetched))
    # The proof needs hours without traffic before the stream's first archived row.
    zeros = [p for p in states if format_iso(first_fetched) <= p < first_row]
    assert zeros
    for period, row in states.items():
        if period >= format_iso(LAST - 2 * H):
            continue  # the last read's unsettled hours and after
        assert row.state == FINAL, row
        assert row.bytes_out == true.get(period, 0), period
    assert [r.state for r in rows[-3:]] == [PARTIAL, PARTIAL, NOT_ARCHIVED]


def test_a_cut_short_first_day_agrees_with_the_view_and_says_what_is_missing(
    archived: tuple[Engine, httpx.Client],
) -> None:
    engine, http = archived
    true_days = truth_by_period(http, "stream_usage", Resolution.DAY, STREAM)
    with engine.connect() as conn:
        rows = usage_report(conn, stream=STREAM, start=T0 - 10 * D, stop=LAST + D, by="day")
        view = {
            format_iso(datetime.fromisoformat(str(day).replace("Z", "+00:00"))): (
                int(out),
                bool(final),
            )
            for day, out, final in conn.execute(
                sa.text(
                    "SELECT day, bytes_out, is_final FROM stream_daily_usage WHERE stream_name = :s"
                ),
                {"s": STREAM},
            )
        }
    by_day = {r.period: r for r in rows}
    assert by_day["2026-11-10"] == PeriodRow("2026-11-10", "2026-11-12", None, None, NOT_ARCHIVED)
    # Hours from 02:00 only, and no daily row (the vendor's daily window starts on the 14th):
    # every archived hour is final, as the view says, but the day is not whole.
    cut = by_day["2026-11-13"]
    assert cut.state == SOME_NOT_ARCHIVED
    assert (cut.bytes_out, True) == view.get("2026-11-13T00:00:00Z", (0, True))
    for day in ("2026-11-14", "2026-11-15", "2026-11-18", "2026-11-20"):
        assert by_day[day].state == FINAL, by_day[day]
        assert by_day[day].bytes_out == true_days.get(f"{day}T00:00:00Z", 0)
    # Read at 00:02 on the 22nd: the 21st is over but not settled, the 22nd just begun.
    assert [by_day[d].state for d in ("2026-11-21", "2026-11-22")] == [PARTIAL, PARTIAL]
    # Partial exactly where the view says a row is not final (or the day is not over).
    for period, row in by_day.items():
        stored = view.get(f"{period}T00:00:00Z")
        if stored is not None and not stored[1]:
            assert row.state == PARTIAL


def test_the_page_draws_an_unarchived_span_as_wide_as_it_is_long(
    archived: tuple[Engine, httpx.Client],
) -> None:
    engine, _ = archived
    # The account's daily data reaches 90 days back from T0 (from Aug 23): 22 days before it.
    start = datetime(2026, 8, 1, tzinfo=UTC)
    with engine.connect() as conn:
        kept = Policy(day_retention=timedelta(days=90))
        rows = usage_report(conn, stream=None, start=start, stop=LAST, by="day", policy=kept)
        page = html_report(conn, start=start, stop=LAST, by="day", top=5, now=LAST, policy=kept)
    assert rows[0] == PeriodRow("2026-08-01", "2026-08-22", None, None, NOT_ARCHIVED)
    # August is a month the vendor purged in part: its zero days cannot be proven against the
    # Month bucket, so the Day guard records them as gaps (cycle/day_check.py), never final.
    assert [r for r in rows[1:] if r.state == NOT_ARCHIVED and r.period < "2026-09"] == [
        r for r in rows[1:] if r.state == NOT_ARCHIVED
    ]
    chart = page[
        page.index('data-metric="bytes_out"') : page.index("</svg>", page.index("bytes_out"))
    ]
    widths: list[tuple[str, float]] = [
        (m.group(1), float(m.group(2)))
        for m in re.finditer(r'data-period="([^"]+)"[^>]*? width="([\d.]+)"', chart)
    ]
    gap = dict(widths)["2026-08-01"]
    day = dict(widths)["2026-09-01"]
    # Each slot is a day less the 2 px between bars.
    assert gap + 2 == pytest.approx(22 * (day + 2), abs=0.2)
    assert 'data-periods="22"' in chart


def test_status_shows_nothing_behind_on_an_up_to_date_archive(
    archived: tuple[Engine, httpx.Client],
) -> None:
    engine, _ = archived
    policy = Policy()

    def behind(now: datetime) -> dict[tuple[str, str], Any]:
        with engine.connect() as conn:
            status = read_status(conn, now=now, policy=policy, schedule_minutes="2,17,32,47")
        return {(s.dataset, s.resolution): s.behind_seconds for s in status.scopes}

    fresh = behind(LAST + timedelta(minutes=4))
    assert len(fresh) >= 6  # account and stream, Hour/Day (and the account's Month)
    assert set(fresh.values()) == {0.0}
    # Three days without a cycle: the hour and the day ended 23:00 and midnight (Nov 21/22)
    # could be final from 01:00 on Nov 22; the month of November cannot be yet.
    later = behind(LAST + 3 * D)
    late = (LAST + 3 * D - datetime(2026, 11, 22, 1, tzinfo=UTC)).total_seconds()
    assert later[("account_usage", "Hour")] == late
    assert later[("account_usage", "Day")] == late
    assert later[("account_usage", "Month")] == 0.0
