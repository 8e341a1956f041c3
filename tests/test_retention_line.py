"""The oldest hour the vendor still holds is saved, and a purged one is never a final zero.

The simulator purges at its exact line (a bucket is held while its start is at least the
retention before the vendor's now). The archive asks from that line (`Policy.reach`); inside
the retention margin it trusts a bucket only when it holds traffic, and records a zero there
as a gap (README: the vendor's retention and the margin). Both halves, over loopback HTTP,
on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.datasets import STREAMS_SERIES
from archiver.rules.plan import Plan, Policy
from archiver.simulator import SimConfig, Simulator
from archiver.store.tables import stream_usage, sync_gaps, sync_state
from archiver.timeutil import Resolution, format_iso
from tests.harness import Harness, archived, truth
from tests.simhelpers import running_simulator

H = Resolution.HOUR
CONFIG = SimConfig(streams=3, seed=5)
STREAM = "stream-0001"
# STREAM's session starts in this hour; the hour before it is quiet.
TRAFFIC = datetime(2026, 11, 10, 20, tzinfo=UTC)
WEEK = timedelta(days=7)
# One stream, named by hand: the feed history would name the others at once (and the test
# compares this stream's hours with the archive's).
SETTINGS = {"discovery": False, "feeds": False, "streams": [STREAM]}


def _comparable(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        row["period_start"]: {k: v for k, v in row.items() if k not in ("fetched_at", "is_final")}
        for row in rows
    }


def _gaps(engine: Engine) -> set[tuple[str, str, datetime, datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                sync_gaps.c.dataset,
                sync_gaps.c.stream_name,
                sync_gaps.c.gap_start,
                sync_gaps.c.gap_stop,
            ).where(sync_gaps.c.resolution == H.value)
        ).all()
    return {(d, s, a, b) for d, s, a, b in rows}


def _covers(gaps: set[tuple[str, str, datetime, datetime]], dataset: str, stream: str) -> bool:
    return any(d == dataset and s == stream and a <= TRAFFIC < b for d, s, a, b in gaps)


@pytest.mark.parametrize("minutes", [2, 58])
def test_a_stream_named_6_days_23_hours_after_its_traffic_gets_that_hour(
    engine: Engine, minutes: int
) -> None:
    """Named (first tracked) 6 d 23 h and some minutes after its first hour of traffic: the
    vendor still holds that hour, and the archive saves it final and exact."""
    now = TRAFFIC + WEEK - timedelta(hours=1) + timedelta(minutes=minutes)
    # The margin would have started this stream an hour later: the hour would be lost.
    assert (
        Policy().horizon(STREAMS_SERIES, H, now) > TRAFFIC == Policy().reach(STREAMS_SERIES, H, now)
    )
    with running_simulator(CONFIG, start=now) as (sim, http):
        report = Harness(sim, engine, SETTINGS).cycle(now)
        assert report.ok, report.errors
        stop = Policy().first_unfinal(H, now)
        for dataset in ("stream_usage", "stream_geo_usage", "account_usage"):
            held = [
                r
                for r in truth(http, dataset, H, TRAFFIC, stop)
                if r.get("stream_name", STREAM) == STREAM
            ]
            assert any(r["period_start"] == format_iso(TRAFFIC) for r in held), dataset
            got = [
                r
                for r in archived(engine, dataset, H, TRAFFIC, stop)
                if r.get("stream_name", STREAM) == STREAM
            ]
            assert all(r["is_final"] for r in got), dataset
            if dataset == "stream_geo_usage":  # several rows per hour: compare them as a set
                key = ("period_start", "country")
                assert {tuple(r[k] for k in key): r for r in _plain(got)} == {
                    tuple(r[k] for k in key): r for r in held
                }
            else:
                assert _comparable(got) == _comparable(held), dataset
    # A stream with traffic in that hour records no gap there.
    assert not _covers(_gaps(engine), "stream_usage", STREAM)


def test_a_bucket_purged_inside_the_margin_is_a_gap_never_a_final_zero(engine: Engine) -> None:
    """The vendor purges the hour between the plan (which still saw it held) and its answer:
    it reads back as zero, is recorded as a gap, never stored final, and the partial value
    archived earlier stays as it was; the watermark goes on past it."""
    early = TRAFFIC + timedelta(minutes=32)
    # Planned 10 s before the vendor's line passes the hour; answered 10 s after (a clock
    # 20 s ahead is still believed: README, "No single clock reading can cost data").
    planned = TRAFFIC + WEEK - timedelta(seconds=10)
    answered = TRAFFIC + WEEK + timedelta(seconds=10)
    with running_simulator(CONFIG, start=early) as (sim, http):
        harness = Harness(sim, engine, SETTINGS)
        first = harness.cycle(early)
        assert first.ok, first.errors
        (partial,) = archived(engine, "stream_usage", H, TRAFFIC, TRAFFIC + timedelta(hours=1))
        assert not partial["is_final"]
        assert partial["bytes_out"] > 0

        def purge(_: Plan) -> None:
            sim.set_now(answered)

        report = harness.cycle(planned, on_plan=purge)
        assert report.ok, report.errors
        assert report.belief.believed
        after = TRAFFIC + timedelta(hours=1)
        # Settled by the earlier of the two clocks (README: never later than either says).
        stop = Policy().first_unfinal(H, planned)
        held = truth(http, "stream_usage", H, after, stop)
        _check_purged(engine, sim, partial, held, after, stop)


def _check_purged(
    engine: Engine,
    sim: Simulator,
    partial: dict[str, Any],
    held: list[dict[str, Any]],
    after: datetime,
    stop: datetime,
) -> None:
    assert sim.now() == TRAFFIC + WEEK + timedelta(seconds=10)
    # Never stored final, never overwritten: the earlier partial row is untouched.
    (kept,) = archived(engine, "stream_usage", H, TRAFFIC, after)
    assert kept == partial
    # Recorded as a gap, for the stream and for the account (both read zero there).
    gaps = _gaps(engine)
    for dataset, stream in (
        ("stream_usage", STREAM),
        ("stream_geo_usage", STREAM),
        ("account_usage", ""),
        ("account_geo_usage", ""),
    ):
        assert _covers(gaps, dataset, stream), (dataset, stream, sorted(gaps))
    # The next hour, inside the margin too but with traffic, is trusted: final and exact.
    got = archived(engine, "stream_usage", H, after, stop)
    assert got
    assert all(r["is_final"] for r in got)
    assert _comparable(got) == _comparable([r for r in held if r["stream_name"] == STREAM])
    assert format_iso(after) in _comparable(got)
    # The doubted zero does not hold the stream back: its watermark moved on.
    with engine.connect() as conn:
        watermark = conn.execute(
            sa.select(sync_state.c.watermark).where(
                sync_state.c.dataset == "stream_usage",
                sync_state.c.stream_name == STREAM,
                sync_state.c.resolution == H.value,
            )
        ).scalar_one()
        finals = conn.execute(
            sa.select(sa.func.count()).where(
                stream_usage.c.period_start == TRAFFIC, stream_usage.c.is_final
            )
        ).scalar_one()
    assert watermark == stop
    assert finals == 0


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("fetched_at", "is_final")} for r in rows]
