"""The sync engine against the simulator over loopback HTTP, checked against ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.simulator import SimConfig, Simulator
from archiver.store.tables import account_usage, sync_gaps, sync_runs, tracked_streams
from archiver.timeutil import Resolution
from archiver.vocabulary import RunKind
from tests.harness import (
    Harness,
    compare_with_truth,
    lost_in_gaps,
    quarter_hours,
    table_dump,
    tracked_names,
    truth,
)
from tests.simhelpers import TOKEN

pytestmark = pytest.mark.e2e

START = datetime(2026, 11, 20, 0, 2, tzinfo=UTC)


def test_backfill_then_three_days_of_cycles_equal_the_truth(engine: Engine) -> None:
    config = SimConfig(
        streams=14,
        seed=21,
        initial_streams=9,
        growth_days=2.5,
        unreportable_streams=1,
        origin=START,
    )
    end = START + timedelta(days=3)
    with Simulator(config, token=TOKEN, start=START) as sim:
        harness = Harness(sim, engine, {"streams": ["stream-0000", "bad/name"]})
        first = harness.cycle(START, kind=RunKind.BACKFILL)
        assert first.ok, first.errors
        assert first.refused == {
            "bad/name": "the name contains '/', which the vendor never reports on"
        }
        for moment in quarter_hours(START + timedelta(minutes=15), end):
            report = harness.cycle(moment)
            assert report.ok, report.errors
        last = quarter_hours(end, end + timedelta(minutes=15))[0]
        harness.cycle(last)
        with httpx.Client(base_url=sim.url) as http:
            verdict = compare_with_truth(engine=engine, http=http, first_now=START, last_now=last)
            # Gaps only over quiet hours read inside the retention margin: nothing lost.
            assert lost_in_gaps(engine, http) == []
        print("\n".join(verdict.lines))
        assert verdict.problems == []
        # Every reportable stream with traffic during the run was found (by config or
        # discovery) and the one the vendor cannot report on was refused, never sent.
        live = {
            s.name
            for s in sim.traffic.streams
            for h in range(int(START.timestamp()) // 3600, int(last.timestamp()) // 3600)
            if sim.traffic.stream_hour(s.index, h) is not None
        }
        names = tracked_names(engine)
        assert {n for n in live if "--" not in n} <= names
        assert not any("--" in n for n in names)
        with engine.connect() as conn:
            refused = (
                conn.execute(
                    sa.select(tracked_streams.c.stream_name).where(
                        tracked_streams.c.status == "refused"
                    )
                )
                .scalars()
                .all()
            )
            assert set(refused) >= {"bad/name"}
        stats = sim.stats_payload()["requests"]
        assert not any("--" in path for path in stats)

        before = table_dump(engine)
        again = harness.cycle(last)
        assert again.ok
        assert table_dump(engine) == before


def test_a_partial_bucket_is_updated_and_final_only_after_settle(engine: Engine) -> None:
    config = SimConfig(streams=30, seed=5, origin=START)
    hour = datetime(2026, 11, 19, 18, tzinfo=UTC)
    with Simulator(config, token=TOKEN, start=hour) as sim:
        harness = Harness(sim, engine, {"discovery": False})

        def account_hour() -> tuple[int, bool, datetime]:
            with engine.connect() as conn:
                row = conn.execute(
                    sa.select(
                        account_usage.c.bytes_out,
                        account_usage.c.is_final,
                        account_usage.c.fetched_at,
                    ).where(
                        account_usage.c.resolution == "Hour", account_usage.c.period_start == hour
                    )
                ).one()
            return int(row[0]), bool(row[1]), row[2]

        harness.cycle(hour + timedelta(minutes=20))
        partial, final_flag, _ = account_hour()
        assert not final_flag
        harness.cycle(hour + timedelta(minutes=47))
        grown, final_flag, _ = account_hour()
        assert partial < grown
        assert not final_flag
        harness.cycle(hour + timedelta(minutes=65))
        complete, final_flag, _ = account_hour()
        assert not final_flag  # complete, but not yet settled (60 minutes after its end)
        harness.cycle(hour + timedelta(minutes=122))
        settled, final_flag, fetched = account_hour()
        assert final_flag
        assert settled == complete
        assert fetched == hour + timedelta(minutes=122)
        with httpx.Client(base_url=sim.url) as http:
            (truth_row,) = truth(
                http, "account_usage", Resolution.HOUR, hour, hour + timedelta(hours=1)
            )
        assert truth_row["bytes_out"] == settled
        # Final rows are no longer asked for: the watermark moved past them.
        harness.cycle(hour + timedelta(minutes=137))
        assert account_hour()[2] == fetched


def test_an_outage_longer_than_the_window_records_exactly_the_lost_buckets(
    engine: Engine,
) -> None:
    config = SimConfig(streams=6, seed=8, origin=START)
    with Simulator(config, token=TOKEN, start=START) as sim:
        harness = Harness(sim, engine, {"discovery": False, "streams": ["stream-0000"]})
        assert harness.cycle(START).ok
        back = START + timedelta(days=9, hours=5)
        report = harness.cycle(back)
        assert report.ok
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sync_gaps)).all()
        # Besides the purged gap of each scope (from where its watermark was), a quiet hour
        # read inside the retention margin, by the first cycle or after the outage, is a gap
        # of its own (README).
        gaps: dict[tuple[str, str, str], set[tuple[datetime, datetime]]] = {}
        for r in rows:
            gaps.setdefault((r.dataset, r.stream_name, r.resolution), set()).add(
                (r.gap_start, r.gap_stop)
            )
        # Hourly data: the first unfinal hour at START (22:00 the day before, settle 60 min)
        # up to the vendor's exact line after the outage: 7 days back, rounded up to the hour
        # (Nov 29 05:02 - 7 days = Nov 22 05:02 -> 06:00).
        hour_gap = (datetime(2026, 11, 19, 23, tzinfo=UTC), datetime(2026, 11, 22, 6, tzinfo=UTC))
        day_gap = (datetime(2026, 11, 19, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))
        for scope, gap in (
            (("account_usage", "", "Hour"), hour_gap),
            (("stream_usage", "stream-0000", "Hour"), hour_gap),
            (("stream_usage", "stream-0000", "Day"), day_gap),
        ):
            assert gap in gaps[scope], (scope, gaps.get(scope))
        assert ("account_usage", "", "Day") not in gaps  # 365 days: nothing lost
        for r in rows:  # every other gap is one quiet hour read inside the margin
            if (r.gap_start, r.gap_stop) in (hour_gap, day_gap):
                continue  # the outage's, in every scope of that resolution
            assert r.gap_stop - r.gap_start == timedelta(hours=1), tuple(r)
            with httpx.Client(base_url=sim.url) as http:
                held = truth(http, r.dataset, Resolution.HOUR, r.gap_start, r.gap_stop)
            assert not [x for x in held if x.get("stream_name", "") == r.stream_name], tuple(r)
        recorded_now = {(g.scope.dataset, g.scope.stream, g.start) for g in report.gaps}
        assert {(r.dataset, r.stream_name, r.gap_start) for r in rows if r.recorded_at > START} == (
            recorded_now
        )
        with engine.connect() as conn:
            statuses = conn.execute(sa.select(sync_runs.c.status)).scalars().all()
        assert statuses == ["ok", "ok"]
