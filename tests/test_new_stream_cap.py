"""A burst of new names is started a slice per cycle: bounded requests, nothing dropped."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.config import get_settings
from archiver.cycle.streams import add_streams
from archiver.cycle.sync import plan_cycle
from archiver.rules.plan import Plan
from archiver.simulator import SimConfig, Simulator
from archiver.store import state as store_state
from archiver.store.db import transaction
from archiver.store.tables import sync_state, tracked_streams
from archiver.vocabulary import RunKind, StreamSource
from tests.harness import Harness
from tests.simhelpers import TOKEN

NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)


def _register(engine: Engine, names: list[str], source: StreamSource, at: datetime) -> None:
    with transaction(engine) as conn:
        added = add_streams(conn=conn, names=names, source=source, now=at, seen=True)
    assert len(added.added) == len(names)


def _asked(plan: Plan) -> set[str]:
    return {name for p in plan.requests for name in p.request.streams}


def _plan(engine: Engine, cap: int, kind: RunKind = RunKind.SYNC) -> Plan:
    url = engine.url.render_as_string(hide_password=False)
    settings = get_settings(database_url=url, now=NOW, max_new_streams_per_cycle=cap)
    return plan_cycle(engine=engine, settings=settings, now=NOW, kind=kind)


def _start(engine: Engine, plan: Plan) -> None:
    """What a cycle stores as it plans: the new scopes' first watermarks."""
    with transaction(engine) as conn:
        store_state.start_scopes(
            conn=conn, watermarks=plan.watermarks, gaps=plan.gaps, recorded_at=NOW
        )


def test_ten_thousand_webhook_names_start_only_a_capped_slice_oldest_first(
    engine: Engine,
) -> None:
    cap = 500
    # The newest names sort first by name: the order must be by age, not by name.
    older = [f"z-old-{n:05d}" for n in range(5000)]
    newer = [f"a-new-{n:05d}" for n in range(5000)]
    _register(engine, older, StreamSource.WEBHOOK, NOW - timedelta(hours=2))
    _register(engine, newer, StreamSource.WEBHOOK, NOW - timedelta(hours=1))
    _register(engine, ["cli-1", "cli-2"], StreamSource.CLI, NOW - timedelta(hours=1))
    first = _plan(engine, cap)
    assert _asked(first) == set(older[:cap]) | {"cli-1", "cli-2"}
    # Requests of ten names: per planned window, at most ceil(502 / 10) requests.
    with_names = [p.request for p in first.requests if p.request.streams]
    windows = {(r.endpoint.dataset, r.resolution, r.start, r.stop) for r in with_names}
    assert len(with_names) <= len(windows) * math.ceil((cap + 2) / 10)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(tracked_streams)).scalar()
    assert count == 10_002  # none dropped: the rest wait


def test_later_cycles_drain_the_queue_until_every_name_is_started(engine: Engine) -> None:
    cap = 100
    names = [f"hook-{n:04d}" for n in range(1000)]
    _register(engine, names, StreamSource.WEBHOOK, NOW - timedelta(hours=1))
    started: set[str] = set()
    slices: list[list[str]] = []
    plan = _plan(engine, cap)
    while _asked(plan) != started:
        slices.append(sorted(_asked(plan) - started))
        started |= _asked(plan)
        _start(engine, plan)
        plan = _plan(engine, cap)
        assert len(slices) <= 15
    assert slices == [names[n : n + cap] for n in range(0, 1000, cap)]


def test_each_source_has_its_own_cap_and_started_streams_are_never_held_back(
    engine: Engine,
) -> None:
    _register(engine, [f"hook-{n}" for n in range(30)], StreamSource.WEBHOOK, NOW)
    _register(engine, [f"disc-{n}" for n in range(30)], StreamSource.DISCOVERED, NOW)
    hooks = sorted(f"hook-{n}" for n in range(30))
    found = sorted(f"disc-{n}" for n in range(30))
    plan = _plan(engine, 10)
    asked = _asked(plan)
    assert asked == set(hooks[:10]) | set(found[:10])
    _start(engine, plan)
    assert _asked(_plan(engine, 10)) == set(hooks[:20]) | set(found[:20])


def test_a_backfill_asks_for_every_name(engine: Engine) -> None:
    names = [f"hook-{n:02d}" for n in range(30)]
    _register(engine, names, StreamSource.WEBHOOK, NOW)
    assert len(_asked(_plan(engine, 10))) == 10
    assert _asked(_plan(engine, 10, RunKind.BACKFILL)) == set(names)


@pytest.mark.e2e
def test_the_simulator_sees_the_burst_taken_a_slice_per_cycle(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    names = [f"burst-{n:04d}" for n in range(250)]
    _register(engine, names, StreamSource.WEBHOOK, NOW - timedelta(minutes=30))
    with Simulator(SimConfig(streams=5, seed=3), token=TOKEN, start=NOW) as sim:
        harness = Harness(
            sim,
            engine,
            # Feeds off: the slices counted here are the webhook burst's alone.
            {
                "discovery": False,
                "publish_tokens": False,
                "feeds": False,
                "max_new_streams_per_cycle": 100,
            },
        )
        fetched: list[int] = []
        for cycle in range(3):
            caplog.clear()
            report = harness.cycle(NOW + timedelta(minutes=15 * cycle))
            assert report.ok, report.errors
            with engine.connect() as conn:
                done = conn.execute(
                    sa.select(sa.func.count(sa.distinct(sync_state.c.stream_name))).where(
                        sync_state.c.stream_name != "",
                        sync_state.c.last_success_at.is_not(None),
                    )
                ).scalar()
            fetched.append(int(done or 0))
            waiting = 250 - 100 * (cycle + 1)
            if waiting > 0:
                assert f"{waiting} new stream(s) from webhook wait for a later cycle" in caplog.text
            else:
                assert "wait for a later cycle" not in caplog.text
    assert fetched == [100, 200, 250]
