"""The clock holes where the wire is the point: the simulator's `Date` bent over loopback.

A `Date` creeping ahead 29 s more each cycle, and single answers 25 s ahead of an honest
clock just before a bucket settles: neither settles anything past the vendor's real clock,
and honest cycles after them leave the archive equal to the truth.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from archiver.simulator.faults import Faults
from tests.test_clock_trust import (
    START,
    STEP,
    archive,
    assert_nothing_settled_beyond,
    repair_and_compare,
    warm_up,
)

pytestmark = pytest.mark.e2e


def test_a_date_creeping_ahead_settles_nothing_early(engine: Engine) -> None:
    with archive(engine) as box:
        moment = warm_up(box)
        doubted = 0
        for step in range(1, 13):
            moment += STEP
            box.sim.faults = Faults(date_offset_seconds=29.0 * step)
            report = box.cycle(moment)
            doubted += not report.belief.believed
            assert_nothing_settled_beyond(engine, moment)
        assert doubted >= 11  # all but the first step, within the agreement
        repair_and_compare(box, START, moment)


def test_answers_ahead_within_the_agreement_settle_no_bucket_early(engine: Engine) -> None:
    with archive(engine) as box:
        moment = warm_up(box)
        # 10 s before the hour: a bucket settles on the hour, every other answer says +25 s.
        moment = moment.replace(minute=59, second=50) + timedelta(hours=1)
        box.sim.faults = Faults(date_offset_seconds=25.0, date_every=2)
        report = box.cycle(moment)
        assert report.errors == []
        assert report.belief.believed
        assert_nothing_settled_beyond(engine, moment)
        repair_and_compare(box, START, moment)
