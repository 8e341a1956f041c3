"""No clock reading can cost data (issue 25): the simulator's `Date` header bent over loopback.

Each scenario of the audit: one cycle 2 days ahead, 7 days ahead on a fresh archive, 10 days
ahead on the monitoring listing alone, every other answer 3 days ahead, no header with the
host 2 hours fast. The bent cycle settles nothing on a wrong reading (no row final early, no
watermark past the vendor's real clock, no gap, no stream dormant) and says so in
`sync_runs`; honest cycles after it leave the archive equal to the truth, bucket for bucket.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.cycle.report import CycleReport
from archiver.datasets import BY_DATASET
from archiver.rules.clock_trust import PERSISTENCE
from archiver.rules.plan import Policy
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.faults import Faults
from archiver.store.tables import USAGE_TABLES, sync_gaps, sync_runs, sync_state, tracked_streams
from archiver.timeutil import Resolution, next_start
from tests.harness import Harness, compare_with_truth, lost_in_gaps
from tests.processes import Ran
from tests.simhelpers import TOKEN

pytestmark = pytest.mark.e2e

START = datetime(2026, 11, 20, 0, 2, tzinfo=UTC)
STEP = timedelta(minutes=15)
DAY = 86400.0
POLICY = Policy()


@dataclass
class Archive:
    sim: Simulator
    harness: Harness
    engine: Engine

    def cycle(self, at: datetime, *, host: datetime | None = None) -> CycleReport:
        return self.harness.cycle(at, host=host)


@contextmanager
def archive(engine: Engine) -> Iterator[Archive]:
    """Seven streams with a week of traffic, configured and listed by discovery."""
    config = SimConfig(streams=7, seed=3, initial_streams=7, origin=START)
    with Simulator(config, token=TOKEN, start=START) as sim:
        names = [s.name for s in sim.traffic.streams]
        overrides = {"streams": names, "discovery": True, "publish_tokens": False}
        yield Archive(sim, Harness(sim, engine, overrides), engine)


def settled(engine: Engine) -> dict[str, Any]:
    """Everything a cycle may make permanent: final rows, watermarks, gaps, stream status."""
    with engine.connect() as conn:
        final = {
            name: sorted(tuple(r) for r in conn.execute(sa.select(t).where(t.c.is_final)))
            for name, t in USAGE_TABLES.items()
        }
        return {
            "final": final,
            "watermarks": sorted(
                (r.dataset, r.stream_name, r.resolution, r.watermark)
                for r in conn.execute(sa.select(sync_state))
            ),
            "gaps": conn.execute(sa.select(sa.func.count()).select_from(sync_gaps)).scalar(),
            "streams": sorted(
                conn.execute(sa.select(tracked_streams.c.stream_name, tracked_streams.c.status))
            ),
        }


def assert_nothing_settled_beyond(
    engine: Engine, vendor_now: datetime, *, dated: bool = True
) -> None:
    """No row final, nor watermark moved, past the vendor's real clock; nor stamped past
    it when there was a `Date` to tell (`dated`: without one, only the host can)."""
    with engine.connect() as conn:
        for table in USAGE_TABLES.values():
            rows = conn.execute(
                sa.select(table.c.resolution, table.c.period_start, table.c.fetched_at).where(
                    table.c.is_final
                )
            ).all()
            early = [
                r.period_start
                for r in rows
                if next_start(r.period_start, Resolution(r.resolution)) + POLICY.settle > vendor_now
            ]
            assert early == [], f"{table.name}: buckets not yet settled stored final"
            latest = conn.execute(sa.select(sa.func.max(table.c.fetched_at))).scalar()
            if dated:
                assert latest is None or latest <= vendor_now, f"{table.name}: dated ahead"
        for row in conn.execute(sa.select(sync_state)):
            limit = POLICY.first_unfinal(Resolution(row.resolution), vendor_now)
            assert row.watermark <= limit, f"a watermark passed the vendor: {tuple(row)}"
        # A gap only ever covers buckets older than the safe line by the vendor's clock when
        # it was recorded (a purge, or a zero read inside the retention margin): never data
        # the vendor surely still held, and never recorded by a clock ahead of the vendor's.
        for gap in conn.execute(sa.select(sync_gaps)):
            endpoint = BY_DATASET[gap.dataset]
            assert gap.recorded_at <= vendor_now, f"a gap recorded ahead: {tuple(gap)}"
            safe = POLICY.horizon(endpoint, Resolution(gap.resolution), gap.recorded_at)
            assert gap.gap_stop <= safe, f"a gap over data the vendor held: {tuple(gap)}"
        dormant = conn.execute(
            sa.select(tracked_streams.c.stream_name).where(tracked_streams.c.status == "dormant")
        ).all()
        assert dormant == []


def last_run(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(sync_runs).order_by(sync_runs.c.id.desc()).limit(1)).one()
    return dict(row._mapping)


def repair_and_compare(box: Archive, first: datetime, bent: datetime) -> None:
    """Honest cycles after the bent one; then the archive equals the truth, gaps none."""
    box.sim.faults = Faults()
    moment = bent
    for _ in range(4):  # an hour: the bent cycle's buckets have all settled by its end
        moment += STEP
        report = box.cycle(moment)
        assert report.ok, (report.errors, report.clock_problem)
    with httpx.Client(base_url=box.sim.url) as http:
        verdict = compare_with_truth(engine=box.engine, http=http, first_now=first, last_now=moment)
    assert verdict.problems == [], "\n".join(verdict.lines)
    assert_nothing_settled_beyond(box.engine, moment)  # no gap, no dormant stream
    with box.engine.connect() as conn:
        statuses = set(conn.execute(sa.select(tracked_streams.c.status)).scalars())
    assert statuses == {"active"}


def bent_cycle(box: Archive, at: datetime, faults: Faults, host: datetime | None = None) -> Any:
    """One cycle with the vendor's `Date` bent by `faults`; returns its run row."""
    box.sim.faults = faults
    report = box.cycle(at, host=host)
    box.sim.faults = Faults()
    assert report.errors == []  # every request answered: only the clock was wrong
    assert report.clock_problem is not None
    assert not report.ok
    run = last_run(box.engine)
    assert run["status"] == "partial"
    assert run["clock_problem"] == report.clock_problem
    assert_nothing_settled_beyond(box.engine, at, dated=not faults.no_date)
    return run


def warm_up(box: Archive) -> datetime:
    """Two honest cycles: the archive believes the vendor's clock (skew zero)."""
    for moment in (START, START + STEP):
        report = box.cycle(moment)
        assert report.ok, (report.errors, report.clock_problem)
    return START + STEP


def test_one_cycle_two_days_ahead_settles_nothing(
    engine: Engine, database_url: str, tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    with archive(engine) as box:
        at = warm_up(box) + STEP
        before = settled(engine)
        run = bent_cycle(box, at, Faults(date_offset_seconds=2 * DAY))
        assert settled(engine) == before
        assert run["clock_problem"] == (
            "the vendor's Date is 2 d 0 h ahead of the established clock"
        )
        assert abs(run["clock_skew_seconds"] - 2 * DAY) < 2
        assert run["rows_written"] > 0  # what it read is kept, not final
        shown = cli(["status"], tmp_path, ARCHIVER_DATABASE_URL=database_url)
        assert shown.returncode == 0, shown.stderr
        (line,) = [x for x in shown.stdout.splitlines() if x.startswith("clock:")]
        assert "NOT BELIEVED" in line
        assert "2 d 0 h ahead of the established clock" in line
        shown = cli(["status", "--json"], tmp_path, ARCHIVER_DATABASE_URL=database_url)
        assert json.loads(shown.stdout)["last_run"]["clock_problem"] == run["clock_problem"]
        repair_and_compare(box, START, at)
        shown = cli(["status"], tmp_path, ARCHIVER_DATABASE_URL=database_url)
        assert "NOT BELIEVED" not in shown.stdout


def test_seven_days_ahead_on_a_fresh_archive_starts_nothing(engine: Engine) -> None:
    with archive(engine) as box:
        run = bent_cycle(box, START, Faults(date_offset_seconds=7 * DAY))
        assert run["clock_problem"] == "the vendor's Date is 7 d 0 h ahead of this host's clock"
        state = settled(engine)
        assert state["watermarks"] == []  # not 7 days late: that would skip a week unseen
        assert all(rows == [] for rows in state["final"].values())
        # A second cycle still ahead is not enough to believe it (see PERSISTENCE).
        bent_cycle(box, START + STEP, Faults(date_offset_seconds=7 * DAY))
        assert settled(engine)["watermarks"] == []
        repair_and_compare(box, START, START + STEP)


def test_ten_days_ahead_on_the_monitoring_listing_alone(engine: Engine) -> None:
    with archive(engine) as box:
        at = warm_up(box) + STEP
        before = settled(engine)
        faults = Faults(date_offset_seconds=10 * DAY, date_path="monitoring/streams")
        run = bent_cycle(box, at, faults)
        assert run["clock_problem"] == (
            "the vendor's Date is 10 d 0 h ahead of the established clock"
        )
        assert settled(engine) == before  # no gap, no stream dormant, nothing final
        repair_and_compare(box, START, at)


def test_every_other_answer_three_days_ahead(
    engine: Engine, database_url: str, tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    with archive(engine) as box:
        at = warm_up(box) + STEP
        run = bent_cycle(box, at, Faults(date_offset_seconds=3 * DAY, date_every=2))
        # Discovery's answer was honest and the cycle's clock believed: each answer that
        # agreed with it settled on its own Date, each 3 days ahead settled nothing.
        assert run["clock_problem"] == (
            "some answers settled nothing: an answer's Date was 3 d 0 h ahead of the cycle's clock"
        )
        shown = cli(["status"], tmp_path, ARCHIVER_DATABASE_URL=database_url)
        (line,) = [x for x in shown.stdout.splitlines() if x.startswith("clock:")]
        assert line.endswith("3 d 0 h ahead of the cycle's clock (the next cycle asks again)")
        repair_and_compare(box, START, at)


def test_every_other_answer_three_days_ahead_from_the_first(engine: Engine) -> None:
    with archive(engine) as box:
        at = warm_up(box) + STEP
        before = settled(engine)
        # The first answer of the cycle (discovery's) ahead: the whole cycle is not believed.
        faults = Faults(date_offset_seconds=3 * DAY, date_every=2, date_phase=1)
        run = bent_cycle(box, at, faults)
        assert run["clock_problem"] == (
            "the vendor's Date is 3 d 0 h ahead of the established clock"
        )
        assert settled(engine) == before
        repair_and_compare(box, START, at)


def test_no_date_header_and_a_host_two_hours_fast(engine: Engine) -> None:
    with archive(engine) as box:
        at = warm_up(box) + STEP
        before = settled(engine)
        run = bent_cycle(box, at, Faults(no_date=True), host=at + timedelta(hours=2))
        assert run["clock_problem"] == (
            "an answer had no Date header: the vendor's clock is unknown"
        )
        assert run["clock_skew_seconds"] is None
        assert settled(engine) == before
        repair_and_compare(box, START, at)


@pytest.mark.parametrize("fresh", [False, True], ids=["believed-before", "fresh"])
def test_a_host_clock_really_off_is_believed_once_its_skew_has_persisted(
    engine: Engine, fresh: bool
) -> None:
    # The vendor's clock is right; the host's runs 2 hours fast for good (a broken NTP).
    fast = timedelta(hours=2)
    with archive(engine) as box:
        moment = START if fresh else warm_up(box) + timedelta(hours=1)
        first_doubted = moment
        while True:
            report = box.cycle(moment, host=moment + fast)
            assert report.errors == []
            if report.ok:
                break
            assert_nothing_settled_beyond(engine, moment)
            assert report.clock_problem == "the vendor's Date is 2 h 0 min behind " + (
                "this host's clock" if fresh else "the established clock"
            )
            assert moment - first_doubted < PERSISTENCE, "never believed"
            moment += timedelta(hours=1)
        # Doubted until the same skew has held for PERSISTENCE, then the new reference.
        assert moment - first_doubted == PERSISTENCE
        assert abs(last_run(engine)["clock_skew_seconds"] + fast.total_seconds()) < 2
        for _ in range(4):
            moment += STEP
            report = box.cycle(moment, host=moment + fast)
            assert report.ok, (report.errors, report.clock_problem)
        with httpx.Client(base_url=box.sim.url) as http:
            verdict = compare_with_truth(
                engine=engine,
                http=http,
                first_now=first_doubted + PERSISTENCE if fresh else START,
                last_now=moment,
            )
            lost = lost_in_gaps(engine, http)
        assert verdict.problems == [], "\n".join(verdict.lines)
        with engine.connect() as conn:
            gaps = conn.execute(sa.select(sync_gaps)).all()
        if not fresh:
            assert lost == []  # at most quiet hours read inside the retention margin
        # New scopes started while the host was doubted (at the vendor's line then): what the
        # vendor purged in those 6 hours is a recorded gap, and only that (every gap was purged
        # by then, or a zero read inside the retention margin).
        for gap in gaps:
            if gap.recorded_at < first_doubted:
                continue  # the warm-up's (quiet margin hours: `lost` above)
            endpoint = BY_DATASET[gap.dataset]
            resolution = Resolution(gap.resolution)
            assert gap.gap_start >= POLICY.reach(endpoint, resolution, first_doubted)
            assert gap.gap_stop <= POLICY.horizon(endpoint, resolution, moment)


def test_one_cycle_whose_vendor_clock_went_back_two_days(engine: Engine) -> None:
    with archive(engine) as box:
        at = warm_up(box) + STEP
        before = settled(engine)
        run = bent_cycle(box, at, Faults(date_offset_seconds=-2 * DAY))
        assert run["clock_problem"].startswith("the vendor's clock went back: 1 d 23 h behind")
        assert settled(engine) == before
        repair_and_compare(box, START, at)
