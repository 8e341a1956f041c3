"""The holes a review found in the vendor-clock rule (issue 25): each reproduced, each closed.

Cycles are run through the real rule and the real `sync_runs` history (SQLite and
PostgreSQL): a reading per cycle in, the verdict stored as `run_cycle` stores it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.rules.clock_trust import AGREEMENT, MAX_SKEW, PERSISTENCE, Belief, History, believe
from archiver.rules.reading import Reading
from archiver.store.clock_runs import clock_history
from archiver.store.tables import sync_runs
from tests.processes import Ran
from tests.test_sync_paths import HOUR_HORIZON, Vendor, cycle, scopes
from tests.test_sync_paths import settings as sync_settings

NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
SECOND = timedelta(seconds=1)
QUARTER = timedelta(minutes=15)


def reading(skew: timedelta, at: datetime = NOW) -> Reading:
    return Reading(at, at, at + skew)


def run(engine: Engine, host: datetime, readings: list[Reading]) -> Belief:
    """One cycle's verdict from the stored history, stored in turn as `run_cycle` does."""
    with engine.connect() as conn:
        history = clock_history(conn)
    belief = believe(readings, history, host)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(sync_runs).values(
                kind="sync",
                started_at=host,
                status="ok" if belief.believed else "partial",
                requests=0,
                failed_requests=0,
                rows_written=0,
                gaps=0,
                clock_skew_seconds=None if belief.skew is None else belief.skew.total_seconds(),
                clock_problem=belief.problem,
            )
        )
    return belief


def test_a_date_creeping_ahead_each_cycle_is_never_believed_past_the_agreement(
    engine: Engine,
) -> None:
    # Defect 1: 29 s more each cycle. The reference must not walk with the believed cycles.
    host = NOW
    for _ in range(4):
        assert run(engine, host, [reading(timedelta(0), host)]).believed
        host += QUARTER
    for step in range(1, 40):
        belief = run(engine, host, [reading(29 * SECOND * step, host)])
        if belief.believed:
            assert belief.now(host) <= host + AGREEMENT, f"believed {29 * step} s ahead"
        host += QUARTER
    assert not belief.believed


def test_a_slow_honest_drift_is_followed(engine: Engine) -> None:
    # One second more each cycle (24 s per PERSISTENCE): believed throughout, far past 30 s.
    host = NOW
    for step in range(200):
        belief = run(engine, host, [reading(SECOND * step, host)])
        assert belief.believed, f"doubted at {step} s"
        # The reference lags the drift (never ahead of it): settled a little late, not early.
        assert host + SECOND * step - AGREEMENT <= belief.now(host) <= host + SECOND * step
        host += QUARTER


def test_an_answer_ahead_within_the_agreement_settles_by_the_reference() -> None:
    # Defect 5: an answer 25 s ahead settles no later than its read time by the host clock.
    belief = believe([reading(25 * SECOND), reading(timedelta(0))], History(), NOW)
    assert belief.believed
    assert belief.now(NOW) == NOW  # the earliest reading's, not the first's
    at, problem = belief.settle_time(Reading(NOW, NOW, NOW + 25 * SECOND))
    assert problem is None
    assert at == NOW
    # Behind, it settles on its own (earlier) Date.
    at, _ = belief.settle_time(Reading(NOW, NOW, NOW - 10 * SECOND))
    assert at == NOW - 10 * SECOND
    # The cycle's now is its earliest reading's, whichever answer came first.
    earliest = believe([reading(timedelta(0)), reading(-10 * SECOND)], History(), NOW)
    assert earliest.now(NOW) == NOW - 10 * SECOND
    # The same with a host an hour slow (established): by the reference, not the Date.
    hour = timedelta(hours=1)
    slow = believe([reading(hour + 25 * SECOND), reading(hour)], History(hour, NOW), NOW)
    assert slow.believed
    assert slow.now(NOW) == NOW + hour
    assert slow.settle_time(Reading(NOW, NOW, NOW + hour + 25 * SECOND)) == (NOW + hour, None)


def test_a_date_from_1970_plans_nothing_by_it() -> None:
    # Defect 3: a doubted cycle plans by host + R, lowered only by plausible readings.
    history = History(timedelta(0), NOW - QUARTER)
    belief = believe([reading(datetime(1970, 1, 1, tzinfo=UTC) - NOW)], history, NOW)
    assert not belief.believed
    assert belief.now(NOW) == NOW
    lower = believe([reading(-timedelta(hours=3))], history, NOW)
    assert not lower.believed
    assert lower.now(NOW) == NOW - timedelta(hours=3)
    assert believe([reading(-MAX_SKEW - SECOND)], history, NOW).now(NOW) == NOW


def test_a_new_stream_in_a_cycle_dated_1970_starts_at_the_real_horizon(engine: Engine) -> None:
    assert cycle(engine, Vendor(), sync_settings(streams=["cam"])).ok
    past = Vendor(date=datetime(1970, 1, 1, tzinfo=UTC))
    report = cycle(engine, past, sync_settings(streams=["cam", "new"]))
    assert report.clock_problem is not None
    started = {k[0]: v["watermark"] for k, v in scopes(engine).items() if k[1:] == ("new", "Hour")}
    assert started == {
        "stream_usage": HOUR_HORIZON,
        "stream_geo_usage": HOUR_HORIZON,
        "stream_tracking_usage": HOUR_HORIZON,
    }
    assert report.gaps == []


def test_a_date_equal_to_a_host_known_wrong_must_persist(engine: Engine) -> None:
    # Defect 4: the host runs 2 h fast (established); one answer's Date equals the host's.
    host, slow = NOW, -timedelta(hours=2)
    while not run(engine, host, [reading(slow, host)]).believed:
        host += QUARTER
    for _ in range(4):
        host += QUARTER
        assert run(engine, host, [reading(slow, host)]).believed
    host += QUARTER
    assert not run(engine, host, [reading(timedelta(0), host)]).believed
    # The next honest cycle is believed at once: the reference did not move.
    host += QUARTER
    belief = run(engine, host, [reading(slow, host)])
    assert belief.believed
    assert belief.now(host) == host + slow


def lie(engine: Engine, offset: timedelta, hours: int) -> tuple[list[Belief], list[Belief]]:
    """Honest cycles, a `Date` `offset` ahead for `hours`, then honest ones for 12 h."""
    host = NOW
    for _ in range(2):
        assert run(engine, host, [reading(timedelta(0), host)]).believed
        host += QUARTER
    lied = []
    for _ in range(hours * 4):
        lied.append(run(engine, host, [reading(offset, host)]))
        host += QUARTER
    honest = []
    for _ in range(48):
        honest.append(run(engine, host, [reading(timedelta(0), host)]))
        host += QUARTER
    return lied, honest


def test_a_lie_of_days_is_never_believed_however_long_it_lasts(engine: Engine) -> None:
    # Defect 2: +2 days held 8 h; then the honest clock is believed at once.
    lied, honest = lie(engine, timedelta(days=2), 8)
    assert not any(b.believed for b in lied)
    assert all(b.believed for b in honest)


def test_recovery_after_a_believed_lie_takes_at_most_the_persistence(engine: Engine) -> None:
    # +20 h (a plausible host error) held 7 h is believed; honest readings then win it back.
    lied, honest = lie(engine, timedelta(hours=20), 7)
    assert any(b.believed for b in lied)
    doubted = [b for b in honest if not b.believed]
    assert len(doubted) * QUARTER <= PERSISTENCE
    assert honest[-1].believed
    assert all(b.believed for b in honest[len(doubted) :])


def test_a_slow_answer_is_judged_by_its_window() -> None:
    # Defect 6: a Date written as the answer began, its body read 40 s later.
    history = History(timedelta(0), NOW - QUARTER)
    slow = Reading(NOW, NOW + 40 * SECOND, NOW + SECOND)
    belief = believe([slow], history, NOW)
    assert belief.believed
    assert belief.settle_time(slow) == (NOW + SECOND, None)
    pages = [Reading(NOW, NOW, NOW), Reading(NOW, NOW + 36 * SECOND, NOW + SECOND)]
    assert believe(pages, history, NOW).believed
    # Outside its window by more than the agreement, it is still doubted.
    late = Reading(NOW, NOW + 40 * SECOND, NOW + 71 * SECOND + 40 * SECOND)
    assert not believe([late], history, NOW).believed


def test_health_names_the_clock_when_cycles_were_doubted(
    engine: Engine, database_url: str, tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    # Defect 6: red after doubted cycles, the one line must say why.
    host = NOW
    assert run(engine, host, [reading(timedelta(0), host)]).believed
    with engine.begin() as conn:
        conn.execute(sa.update(sync_runs).values(finished_at=host))
    for _ in range(8):
        host += QUARTER
        assert not run(engine, host, [reading(timedelta(days=2), host)]).believed
    later = (host + QUARTER).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = cli(["health"], tmp_path, ARCHIVER_DATABASE_URL=database_url, ARCHIVER_NOW=later)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "unhealthy: last successful cycle 135 min ago" in result.stderr
    assert "the vendor's clock is not believed: the vendor's Date is 2 d 0 h ahead" in (
        result.stderr
    )
