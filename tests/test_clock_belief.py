"""The belief rule of the vendor's clock (issue 25): which readings a cycle may settle on.

Pure: readings and history in, a verdict out; and the history as `sync_runs` keeps it, on
real SQLite and real PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.retry import parse_http_date
from archiver.rules.clock_trust import (
    AGREEMENT,
    ANSWERS_NOT_SETTLED,
    PERSISTENCE,
    Belief,
    History,
    believe,
)
from archiver.rules.reading import Reading
from archiver.simulator import SimConfig
from archiver.simulator.faults import Faults
from archiver.store.clock_runs import clock_history
from archiver.store.tables import sync_runs
from tests.simhelpers import running_simulator
from tests.test_sync_paths import HOUR_HORIZON, Vendor, cycle, scopes
from tests.test_sync_paths import settings as sync_settings

NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def reading(skew: timedelta | None, *, at: datetime = NOW) -> Reading:
    return Reading(at, at, None if skew is None else at + skew)


def test_readings_that_agree_with_the_host_on_a_fresh_archive_are_believed() -> None:
    belief = believe([reading(timedelta(0)), reading(SECOND)], History(), NOW)
    assert belief.believed
    assert belief.problem is None
    assert belief.skew == timedelta(0)
    assert belief.now(NOW) == NOW


@pytest.mark.parametrize(
    ("skew", "words"),
    [
        (timedelta(days=2), "2 d 0 h ahead of this host's clock"),
        (timedelta(days=7), "7 d 0 h ahead of this host's clock"),
        (-timedelta(hours=2), "2 h 0 min behind this host's clock"),
        (AGREEMENT + SECOND, "31 s ahead of this host's clock"),
    ],
)
def test_a_reading_off_the_host_on_a_fresh_archive_is_not_believed(
    skew: timedelta, words: str
) -> None:
    belief = believe([reading(skew)], History(), NOW)
    assert not belief.believed
    assert belief.problem is not None
    assert words in belief.problem
    assert belief.skew == skew  # measured and kept, even when not believed
    # Planned and stamped by the earlier of the two: never later than either clock says.
    assert belief.now(NOW) == NOW + min(skew, timedelta(0))


def test_a_reading_within_the_agreement_is_believed() -> None:
    assert believe([reading(AGREEMENT)], History(), NOW).believed


def test_readings_that_disagree_with_each_other_are_not_believed() -> None:
    readings = [reading(timedelta(0)), reading(timedelta(days=10)), reading(timedelta(0))]
    belief = believe(readings, History(), NOW)
    assert not belief.believed
    assert belief.problem == "the vendor's answers disagree about its time by 10 d 0 h"
    assert belief.now(NOW) == NOW


def test_no_date_header_or_no_answer_leaves_the_clock_unknown() -> None:
    # The host clock alone is not enough to settle: it may be hours fast.
    missing = believe([reading(None)], History(), NOW)
    assert not missing.believed
    assert missing.problem == "an answer had no Date header: the vendor's clock is unknown"
    mixed = believe([reading(timedelta(0)), reading(None)], History(), NOW)
    assert not mixed.believed
    none = believe([], History(), NOW)
    assert not none.believed
    assert none.problem == "the vendor's clock could not be read (no answer)"


def test_the_established_skew_is_the_reference() -> None:
    # A host an hour slow, believed before: the same skew again is believed, the host's not
    # (going back to it would be the vendor's clock going back), nor one more hour ahead.
    history = History(timedelta(hours=1), NOW + timedelta(minutes=45))
    assert believe([reading(timedelta(hours=1))], history, NOW).believed
    assert not believe([reading(timedelta(0))], history, NOW).believed
    belief = believe([reading(timedelta(hours=2))], history, NOW)
    assert not belief.believed
    assert belief.problem == "the vendor's Date is 1 h 0 min ahead of the established clock"


def test_a_reading_that_agrees_with_the_host_clock_is_a_change_like_any_other() -> None:
    # The host ran 2 hours fast (believed once it persisted): a Date equal to the host's is
    # no proof (it is what a host known wrong says); it must persist like any other change.
    history = History(-timedelta(hours=2), NOW - timedelta(hours=2, minutes=15))
    belief = believe([reading(SECOND)], history, NOW)
    assert not belief.believed
    assert belief.now(NOW) == NOW - timedelta(hours=2)


def test_a_vendor_clock_going_back_is_not_believed() -> None:
    history = History(timedelta(0), NOW + timedelta(hours=1))
    belief = believe([reading(timedelta(0))], history, NOW)
    assert not belief.believed
    assert belief.problem == "the vendor's clock went back: 1 h 0 min behind an earlier cycle's"
    # Within the agreement, it is only a clock read a little late.
    assert believe([reading(timedelta(0))], History(timedelta(0), NOW + AGREEMENT), NOW).believed


def doubted(skew: timedelta, *ages: timedelta) -> History:
    """A last believed skew of zero, then doubted runs `ages` before NOW measuring `skew`."""
    runs = tuple((NOW - age, skew) for age in sorted(ages))  # newest first
    return History(timedelta(0), NOW - timedelta(days=1), runs)


def test_a_skew_that_persists_long_enough_becomes_believed() -> None:
    # A host really 2 hours fast: the cycles doubt it until it has held for PERSISTENCE.
    skew = -timedelta(hours=2)
    short = doubted(skew, timedelta(minutes=15), PERSISTENCE - timedelta(minutes=15))
    assert not believe([reading(skew)], short, NOW).believed
    long = doubted(skew, timedelta(minutes=15), PERSISTENCE)
    assert believe([reading(skew)], long, NOW).believed
    # Not with a different skew now, nor a streak broken by another skew in between.
    assert not believe([reading(skew + timedelta(minutes=5))], long, NOW).believed
    newest_first = (
        (NOW - timedelta(minutes=15), skew),
        (NOW - timedelta(hours=1), timedelta(days=2)),
        (NOW - PERSISTENCE, skew),
    )
    broken = History(timedelta(0), NOW - timedelta(days=1), newest_first)
    assert not believe([reading(skew)], broken, NOW).believed


def test_one_doubted_cycle_alone_is_never_persistence() -> None:
    assert not believe([reading(timedelta(days=2))], History(), NOW).believed
    assert not believe([reading(timedelta(days=2))], doubted(timedelta(days=2)), NOW).believed


def test_an_answer_settles_only_on_a_date_that_agrees_with_the_believed_clock() -> None:
    belief = Belief(timedelta(hours=1), timedelta(hours=1), None, reference=timedelta(hours=1))
    sent, read = NOW, NOW + timedelta(seconds=90)  # a slow answer: 90 s to read
    vendor = NOW + timedelta(hours=1, seconds=10)
    at, problem = belief.settle_time(Reading(sent, read, vendor))
    assert (at, problem) == (vendor, None)
    # Ahead of the clock as read, or behind it as sent: stored, settled on nothing.
    for wrong in (read + timedelta(hours=1) + AGREEMENT + SECOND, vendor - timedelta(days=3)):
        at, problem = belief.settle_time(Reading(sent, read, wrong))
        assert at is None
        assert problem is not None
        assert problem.startswith("some answers settled nothing: an answer's Date was ")
    at, problem = belief.settle_time(Reading(sent, read, None))
    assert at is None
    assert problem is not None
    assert problem == "some answers settled nothing: an answer came without a Date header"
    # A cycle whose clock is not believed settles no answer, however honest its Date.
    doubted_cycle = Belief(timedelta(days=2), timedelta(0), "the vendor's Date is ...")
    assert doubted_cycle.settle_time(Reading(sent, read, vendor)) == (None, None)


def _run(engine: Engine, started: datetime, skew: float | None, problem: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(sync_runs).values(
                kind="sync",
                started_at=started,
                status="ok" if problem is None else "partial",
                requests=0,
                failed_requests=0,
                rows_written=0,
                gaps=0,
                clock_skew_seconds=skew,
                clock_problem=problem,
            )
        )


def test_the_history_is_read_from_sync_runs(engine: Engine) -> None:
    with engine.connect() as conn:
        assert clock_history(conn) == History()
    hour = timedelta(hours=1)
    _run(engine, NOW - 5 * hour, 3600.0, None)
    _run(engine, NOW - 5 * hour + hour / 2, 3600.0, ANSWERS_NOT_SETTLED + "...")
    _run(engine, NOW - 4 * hour, 0.0, ANSWERS_NOT_SETTLED + "...")  # its clock was believed
    _run(engine, NOW - 3 * hour, 7200.0, "the vendor's Date is ...")
    _run(engine, NOW - 2 * hour, None, "an answer had no Date header")  # measured nothing
    _run(engine, NOW - hour, -60.0, "the vendor's Date is ...")
    with engine.connect() as conn:
        history = clock_history(conn)
    # The believed run at 0 s moved the reference from 3600 s (its skew had persisted).
    assert history.reference == timedelta(0)
    assert history.believed_at == NOW - 4 * hour
    assert history.runs == (
        (NOW - hour, -timedelta(seconds=60)),
        (NOW - 3 * hour, timedelta(seconds=7200)),
        (NOW - 4 * hour, timedelta(0)),
        (NOW - 5 * hour + hour / 2, timedelta(hours=1)),
        (NOW - 5 * hour, timedelta(hours=1)),
    )


def test_the_simulator_bends_its_date_header_as_told() -> None:
    # The simulator is the vendor: its Date is its clock unless a fault bends it.
    start = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
    series = "/api/analytics/account/series"
    params = {"startDate": "2026-11-20", "stopDate": "2026-11-21", "resolution": "Day"}
    day = timedelta(days=1)
    with running_simulator(SimConfig(streams=2, seed=1), start=start) as (sim, http):

        def dates(path: str = series, count: int = 4) -> list[datetime | None]:
            found = []
            for _ in range(count):
                answer = http.get(path, params=params if path == series else {"page": "1"})
                assert answer.status_code == 200
                assert len(answer.headers.get_list("Date")) <= 1
                found.append(parse_http_date(answer.headers.get("Date")))
            return found

        assert dates() == [start] * 4
        sim.faults = Faults(date_offset_seconds=2 * 86400)
        assert dates() == [start + 2 * day] * 4
        sim.faults = Faults(date_offset_seconds=86400, date_every=2, date_phase=1)
        assert dates() == [start + day, start] * 2
        sim.faults = Faults(date_offset_seconds=86400, date_path="monitoring/streams")
        assert dates() == [start] * 4
        assert dates("/api/monitoring/streams", 1) == [start + day]
        sim.faults = Faults(no_date=True)
        assert dates() == [None] * 4


def test_a_doubted_cycle_starts_new_scopes_only_on_an_archive_with_a_believed_past(
    engine: Engine,
) -> None:
    ahead = Vendor(date=NOW + timedelta(days=2))
    # A fresh archive: the bare host clock vouches for nothing, no scope starts.
    report = cycle(engine, ahead, sync_settings(streams=["cam"]))
    assert report.clock_problem is not None
    assert scopes(engine) == {}
    assert cycle(engine, Vendor(), sync_settings(streams=["cam"])).ok
    before = scopes(engine)
    # Believed before: a stream new in a doubted cycle starts at the horizon of the earliest
    # plausible now (here the host's), so what is purged meanwhile will be a recorded gap;
    # the scopes known already keep their watermarks.
    report = cycle(engine, ahead, sync_settings(streams=["cam", "new"]))
    assert report.clock_problem is not None
    after = scopes(engine)
    assert {k: v["watermark"] for k, v in after.items() if k in before} == {
        k: v["watermark"] for k, v in before.items()
    }
    started = {k[0]: v["watermark"] for k, v in after.items() if k[1] == "new" and k[2] == "Hour"}
    assert started == {
        "stream_usage": HOUR_HORIZON,
        "stream_geo_usage": HOUR_HORIZON,
        "stream_tracking_usage": HOUR_HORIZON,
    }
