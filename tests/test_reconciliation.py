"""Day data 365 days, guarded by the vendor's own arithmetic (issue #23 item 5).

Against the simulator over loopback HTTP, with default settings, on real SQLite and real
PostgreSQL: a vendor holding 365 days of Day data is archived exactly; one that purged at 90
days while answering zeros beyond gets no invented zero, a recorded gap instead, and the
`reconciliation` view and `archiver status` show the months that disagree.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.reading.status import read_status
from archiver.rules.plan import Policy
from archiver.simulator import SimConfig
from archiver.store.tables import sync_gaps
from archiver.timeutil import Resolution, buckets, floor, format_iso, next_start
from archiver.vocabulary import RunKind
from tests.harness import Harness, archived, truth
from tests.simhelpers import get_data, running_simulator

NOW = datetime(2026, 12, 3, 6, 2, tzinfo=UTC)
TODAY = floor(NOW, Resolution.DAY)
# The default 365 days less the 60-minute margin, rounded up to the day.
HORIZON = datetime(2025, 12, 4, tzinfo=UTC)
# Sessions on (nearly) every day of every stream: every day has traffic, so any archived
# zero (no row) would be an invented one.
BUSY = SimConfig(streams=6, seed=7, history_days=420, session_chance_percent=80)
USAGE = (
    "bytes_in",
    "bytes_out",
    "standard_bytes_in",
    "standard_bytes_out",
    "restream_bytes_in",
    "restream_bytes_out",
    "restream_seconds",
    "cascade_bytes_in",
    "cascade_bytes_out",
)
A = "/api/analytics/"


def _backfill(engine: Engine, config: SimConfig) -> tuple[dict[str, dict[str, Any]], Any]:
    """One backfill with default settings; the truth of every final Day since the horizon."""
    with running_simulator(config, start=NOW) as (sim, http):
        # One request at a time, in the plan's order (Day data before the never-purged
        # months): only the cycle's own ordering can put the months first.
        overrides = {"discovery": False, "concurrency": 1}
        report = Harness(sim, engine, overrides).cycle(NOW, kind=RunKind.BACKFILL)
        held = truth(http, "account_usage", Resolution.DAY, HORIZON, TODAY)
    assert report.failed == 0, report.errors
    return {row["period_start"]: row for row in held}, report


def _final_days(engine: Engine) -> dict[str, dict[str, Any]]:
    rows = archived(engine, "account_usage", Resolution.DAY, HORIZON - timedelta(days=60), TODAY)
    assert all(row["is_final"] for row in rows)
    return {row["period_start"]: {k: row[k] for k in ("period_start", *USAGE)} for row in rows}


def _day_gaps(engine: Engine) -> set[datetime]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sync_gaps.c.gap_start, sync_gaps.c.gap_stop).where(
                sync_gaps.c.dataset == "account_usage", sync_gaps.c.resolution == "Day"
            )
        ).all()
    return {day for start, stop in rows for day in buckets(start, stop, Resolution.DAY)}


def _reconciliation(engine: Engine) -> list[tuple[str, str, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT check_name, period_start, gap_recorded FROM reconciliation")
        ).all()
    return sorted((name, str(start)[:7], bool(gap)) for name, start, gap in rows)


def _status(engine: Engine) -> tuple[int | None, int]:
    with engine.connect() as conn:
        status = read_status(conn, now=NOW, policy=Policy(), schedule_minutes="2")
    return status.disagreements, status.disagreements_with_gaps


def test_the_simulator_sums_exactly_at_every_resolution() -> None:
    """The vendor's rounding, measured: days sum to their month and hours to their day, to
    the byte. So the guard and the view compare exactly."""
    config = BUSY
    with running_simulator(config, start=NOW) as (_, http):

        def series(resolution: str, start: datetime, stop: datetime) -> dict[str, Any]:
            params = [
                ("startDate", format_iso(start)),
                ("stopDate", format_iso(stop)),
                ("resolution", resolution),
            ]
            bandwidth: dict[str, Any] = get_data(http, A + "account/series", params)["bandwidth"]
            return bandwidth

        months = series(
            "Month", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
        )
        days = series("Day", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
        hours = series("Hour", TODAY - timedelta(days=6), TODAY)
        recent = series("Day", TODAY - timedelta(days=6), TODAY)
    compared = 0
    for whole, parts, resolution in (
        (months, days, Resolution.MONTH),
        (recent, hours, Resolution.DAY),
    ):
        for start, value in whole.items():
            begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
            end = next_start(begin, resolution)
            inside = [
                v
                for k, v in parts.items()
                if begin <= datetime.fromisoformat(k.replace("Z", "+00:00")) < end
            ]
            for field in ("bytesIn", "bytesOut"):
                assert value[field] > 0
                assert sum(v[field] for v in inside) - value[field] == 0, (start, field)
            compared += 1
    assert compared == 11 + 6


def test_a_fresh_backfill_archives_365_days_of_day_data_exactly(engine: Engine) -> None:
    held, report = _backfill(engine, BUSY)
    assert len(held) == (TODAY - HORIZON).days  # every day has traffic: 364 of them
    assert _final_days(engine) == {
        k: {f: v[f] for f in ("period_start", *USAGE)} for k, v in held.items()
    }
    assert _day_gaps(engine) == set()
    # The only gaps: the quiet hour inside the retention margin (the vendor's line at NOW is
    # 2026-11-26 06:02; a zero read in 07:00 may be a purge), doubted in each Hour scope of
    # the account, never a day (README: the vendor's retention and the margin).
    margin_hour = datetime(2026, 11, 26, 7, tzinfo=UTC)
    doubted = {(g.scope.resolution, g.start, g.stop) for g in report.gaps}
    assert doubted <= {(Resolution.HOUR, margin_hour, margin_hour + timedelta(hours=1))}
    assert _reconciliation(engine) == []
    assert _status(engine) == (0, 0)


def test_a_vendor_that_purged_day_data_at_90_days_gets_no_invented_zero(engine: Engine) -> None:
    held, report = _backfill(engine, replace(BUSY, day_retention_days=90))
    assert len(held) == (TODAY - HORIZON).days
    # The vendor answers zeros before its purge line (the start of 2026-09-04 is older than 90
    # days at NOW); every older day of the 365 asked for is a recorded gap, never a row.
    purged = datetime(2026, 9, 5, tzinfo=UTC)
    stored = _final_days(engine)
    assert min(stored) == format_iso(purged)
    for key, row in stored.items():
        assert row == {f: held[key][f] for f in ("period_start", *USAGE)}, key
    assert stored.keys() == {k for k in held if k >= format_iso(purged)}
    assert _day_gaps(engine) == set(buckets(HORIZON, purged, Resolution.DAY))
    assert report.gaps
    months = [
        f"{m:%Y-%m}" for m in buckets(datetime(2025, 12, 1, tzinfo=UTC), purged, Resolution.MONTH)
    ]
    assert _reconciliation(engine) == [("days_in_month", m, True) for m in months]
    assert _status(engine) == (len(months), len(months))
