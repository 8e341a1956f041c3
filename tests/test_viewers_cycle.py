"""Viewer statistics archived every cycle, against the simulator over loopback HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.errors import TransportError
from archiver.api.viewers import read_stream_stats
from archiver.cycle import viewers
from archiver.datasets import STREAM_VIEWER_STATS
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.server import Faults
from archiver.store.tables import (
    account_viewer_stats,
    stream_sessions,
    stream_viewer_stats,
    viewer_reads,
)
from archiver.timeutil import format_iso
from tests.harness import Harness
from tests.simhelpers import TOKEN

NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
CONFIG = SimConfig(
    streams=8,
    seed=11,
    origin=datetime(2026, 11, 8, tzinfo=UTC),
    history_days=0,
    unreportable_streams=1,
    redundant_percent=30,
)
STREAM_COLUMNS = ("stream_name", "period_start", "active_viewers", "views_started", "views_ended")
ACCOUNT_COLUMNS = ("period_start", "active_viewers", "views_started", "views_ended", "streams")


@contextmanager
def harness(
    engine: Engine, faults: Faults | None = None, **overrides: Any
) -> Iterator[tuple[Simulator, Harness, httpx.Client]]:
    with (
        Simulator(CONFIG, token=TOKEN, start=NOW, faults=faults) as sim,
        httpx.Client(base_url=sim.url) as http,
    ):
        yield sim, Harness(sim, engine, {"discovery": False, **overrides}), http


def archived(engine: Engine, table: sa.Table, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.period_start, *table.primary_key))
        return [
            tuple(
                format_iso(v) if isinstance(v, datetime) else v
                for v in (getattr(r, c) for c in columns)
            )
            for r in rows
        ]


def truth(
    http: httpx.Client, dataset: str, columns: tuple[str, ...], start: datetime, stop: datetime
) -> list[tuple[Any, ...]]:
    params = {"dataset": dataset, "start": format_iso(start), "stop": format_iso(stop)}
    answer = http.get("/_sim/truth", params=params)
    assert answer.status_code == 200, answer.text
    return [tuple(r[c] for c in columns) for r in answer.json()["rows"]]


def finals(engine: Engine, table: sa.Table) -> tuple[int, int]:
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        final = conn.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.is_final)
        ).scalar_one()
        return final, total


def test_the_archive_equals_the_truth_after_cycles_with_graphql_faults(engine: Engine) -> None:
    times = [NOW + timedelta(minutes=15 * k) for k in range(6)]  # the last at 13:17
    with harness(engine, faults=Faults(graphql_error_rate=0.5)) as (sim, h, http):
        for k, at in enumerate(times):
            if k == 2:
                sim.faults = Faults(graphql_repeat_page=2)
            if k == 4:
                sim.faults = Faults()
            h.cycle(at)
        last = times[-1]
        stream_truth = truth(
            http, "stream_viewer_stats", STREAM_COLUMNS, NOW - timedelta(days=7, minutes=5), last
        )
        account_truth = truth(
            http, "account_viewer_stats", ACCOUNT_COLUMNS, NOW - timedelta(days=366), last
        )
    assert len(stream_truth) > 100
    assert len({r[0] for r in stream_truth}) > 3
    assert archived(engine, stream_viewer_stats, STREAM_COLUMNS) == stream_truth
    assert archived(engine, account_viewer_stats, ACCOUNT_COLUMNS) == account_truth
    final, total = finals(engine, stream_viewer_stats)
    assert 0 < final < total  # the periods ending after 12:17 are not final yet
    with engine.connect() as conn:
        reads = conn.execute(sa.select(viewer_reads.c.stream_name, viewer_reads.c.watermark))
        marks = {r.stream_name: r.watermark for r in reads}
        sessions = list(
            conn.execute(sa.select(stream_sessions.c.stream_name, stream_sessions.c.ended))
        )
    # Every read's watermark: the first period not final at 13:17 (ending after 12:17), but a
    # stream whose every feed ended by its watermark is not read again (nothing new to read).
    first_unfinal = datetime(2026, 11, 20, 12, 15, tzinfo=UTC)
    assert marks.pop("") == first_unfinal
    behind = {name for name, mark in marks.items() if mark != first_unfinal}
    assert all(marks[name] < first_unfinal for name in behind)
    assert not [
        (name, ended)
        for name, ended in sessions
        if name in behind and (ended is None or ended > marks[name])
    ]


def test_the_streams_reads_walk_side_by_side_and_each_keeps_its_own_watermark(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two names a read: the 7 reportable streams are 4 walks. The first two reads wait for
    # each other (a read walked after another never meets it: the barrier breaks), and the
    # third read fails: its walk stops there, the others store everything.
    monkeypatch.setattr(
        viewers, "STREAM_VIEWER_STATS", replace(STREAM_VIEWER_STATS, names_per_read=2)
    )
    meet = threading.Barrier(2, timeout=30)
    calls: list[list[str]] = []
    lock = threading.Lock()
    real = read_stream_stats

    def read(client: Any, account: str, names: list[str], *args: Any) -> Any:
        with lock:
            calls.append(names)
            number = len(calls)
        if number <= 2:
            meet.wait()
        if number == 3:
            raise TransportError("the third read failed")
        return real(client, account, names, *args)

    monkeypatch.setattr(viewers, "read_stream_stats", read)
    with harness(engine) as (_, h, http):
        report = h.cycle(NOW)
        stream_truth = truth(
            http, "stream_viewer_stats", STREAM_COLUMNS, NOW - timedelta(days=7, minutes=5), NOW
        )
    assert [e for e in report.errors if "the third read failed" in e], report.errors
    failed = set(calls[2])
    assert len({name for names in calls for name in names}) == 7
    archived_rows = archived(engine, stream_viewer_stats, STREAM_COLUMNS)
    assert [r for r in stream_truth if r[0] not in failed] == [
        r for r in archived_rows if r[0] not in failed
    ]
    with engine.connect() as conn:
        query = sa.select(viewer_reads.c.stream_name, viewer_reads.c.watermark)
        marks = {r.stream_name: r.watermark for r in conn.execute(query)}
    # The other walks read up to the first period not final, as the account's read did; the
    # failed walk's streams keep no watermark past what they stored.
    first_unfinal = marks.pop("")
    assert {name for name, mark in marks.items() if mark == first_unfinal} == {
        name for names in calls for name in names
    } - failed
    assert all(marks.get(name, NOW - timedelta(days=7)) < first_unfinal for name in failed)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("negative_viewers", "is not a non-negative integer"),
        ("off_grid_period", "is not on the 5-minute grid"),
        ("other_account", "names another account"),
    ],
)
def test_broken_rows_are_refused_recorded_and_read_again_once_sound(
    engine: Engine, kind: str, reason: str
) -> None:
    times = [NOW, NOW + timedelta(minutes=15), NOW + timedelta(minutes=30)]
    with harness(engine, faults=Faults(graphql_broken=(kind,))) as (sim, h, http):
        report = h.cycle(times[0])
        refused = [e for e in report.errors if "viewer stat row" in e]
        assert refused, report.errors
        assert all(reason in e for e in refused), refused
        assert report.rows_by_table.get("stream_usage", 0) > 0  # the cycle went on
        with engine.connect() as conn:
            assert (
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(stream_viewer_stats)
                    .where(stream_viewer_stats.c.active_viewers < 0)
                ).scalar_one()
                == 0
            )
        sim.faults = Faults()
        for at in times[1:]:
            assert h.cycle(at).ok
        stream_truth = truth(
            http, "stream_viewer_stats", STREAM_COLUMNS, NOW - timedelta(days=7, minutes=5), at
        )
        account_truth = truth(
            http, "account_viewer_stats", ACCOUNT_COLUMNS, NOW - timedelta(days=366), at
        )
    assert archived(engine, stream_viewer_stats, STREAM_COLUMNS) == stream_truth
    assert archived(engine, account_viewer_stats, ACCOUNT_COLUMNS) == account_truth


def test_the_first_read_reaches_as_far_back_as_set_and_viewers_can_be_off(engine: Engine) -> None:
    with harness(engine, stream_viewer_days=1, account_viewer_days=2) as (_, h, http):
        assert h.cycle(NOW).ok
        stream_truth = truth(
            http, "stream_viewer_stats", STREAM_COLUMNS, NOW - timedelta(days=1, minutes=2), NOW
        )
        account_truth = truth(
            http, "account_viewer_stats", ACCOUNT_COLUMNS, NOW - timedelta(days=2, minutes=2), NOW
        )
        assert len(
            truth(http, "account_viewer_stats", ACCOUNT_COLUMNS, NOW - timedelta(days=5), NOW)
        ) > len(account_truth)
    assert stream_truth
    assert archived(engine, stream_viewer_stats, STREAM_COLUMNS) == stream_truth
    assert archived(engine, account_viewer_stats, ACCOUNT_COLUMNS) == account_truth


def test_viewers_off_reads_no_statistics(engine: Engine) -> None:
    with harness(engine, viewers=False) as (_sim, h, _):
        assert h.cycle(NOW).ok
    with engine.connect() as conn:
        for table in (stream_viewer_stats, account_viewer_stats, viewer_reads):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0


def test_a_cycle_whose_clock_is_not_believed_settles_no_viewer_stat(engine: Engine) -> None:
    with harness(engine) as (_sim, h, _):
        report = h.cycle(NOW, host=NOW - timedelta(days=2))  # the vendor two days ahead
        assert not report.belief.believed
    final, total = finals(engine, stream_viewer_stats)
    assert final == 0
    assert total > 0
    assert finals(engine, account_viewer_stats)[0] == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(viewer_reads)).scalar() == 0
