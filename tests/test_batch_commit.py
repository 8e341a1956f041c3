"""Answers stored together in one transaction: a crash mid-batch leaves no answer's rows
without its watermark bookkeeping nor the reverse, the next cycle fetches the batch again, and
a batch the database refuses is stored answer by answer. Against the simulator over loopback,
on real SQLite and real PostgreSQL."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from archiver.api.client import AnalyticsClient, FetchResult
from archiver.config import Settings, get_settings
from archiver.cycle import answer, batch
from archiver.cycle.report import CycleReport
from archiver.cycle.sync import run_cycle
from archiver.errors import DatabaseError
from archiver.simulator import SimConfig
from archiver.store.tables import USAGE_TABLES, sync_state
from archiver.vocabulary import ApiRequest
from tests.simhelpers import TOKEN, running_simulator

NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)  # the batch's cycle: every scope has new hours to store
WRITES_BEFORE_THE_CRASH = 3

Scope = tuple[str, str, str]


def _settings(url: str, base_url: str, names: list[str], now: datetime) -> Settings:
    return get_settings(
        database_url=url,
        api_base_url=base_url,
        api_token=TOKEN,
        now=now,
        discovery=False,
        publish_tokens=False,
        feeds=False,
        viewers=False,
        streams=names,
        hour_retention_days=1,
        stream_retention_days=1,
        day_retention_days=2,
        month_history_months=1,
        concurrency=4,
        max_attempts=1,
        max_requests_per_second=10_000.0,
    )


@contextmanager
def _cycle_setup(engine: Engine) -> Iterator[tuple[Any, list[str]]]:
    with running_simulator(SimConfig(streams=30, seed=3), start=NOW) as (sim, _):
        yield sim, [s.name for s in sim.traffic.streams]


def _run(engine: Engine, sim: Any, names: list[str], now: datetime, one_batch: bool) -> Any:
    """One cycle at `now`; with `one_batch`, each wave's answers arrive as one batch."""
    sim.set_now(now)
    url = engine.url.render_as_string(hide_password=False)
    config = _settings(url, sim.url, names, now)
    with AnalyticsClient.from_options(config.client_options()) as client:
        if one_batch:

            def together(
                requests: Iterable[ApiRequest], most: int
            ) -> Generator[list[FetchResult], None, None]:
                ready = AnalyticsClient.fetch_batches(client, requests, most)
                yield [result for results in ready for result in results]

            client.fetch_batches = together  # type: ignore[method-assign]
        return run_cycle(engine=engine, client=client, settings=config)


def _new_rows(conn: Connection, since: datetime) -> set[Scope]:
    """The scopes with a row written at or after `since`."""
    found: set[Scope] = set()
    for dataset, table in USAGE_TABLES.items():
        stream = table.c.stream_name if "stream_name" in table.c else sa.literal("")
        query = sa.select(stream, table.c.resolution).where(table.c.fetched_at >= since)
        found.update((str(dataset), s, r) for s, r in conn.execute(query.distinct()))
    return found


def _succeeded(conn: Connection, since: datetime) -> set[Scope]:
    """The scopes whose bookkeeping (last success, watermark) was written since `since`."""
    query = sa.select(sync_state.c.dataset, sync_state.c.stream_name, sync_state.c.resolution)
    rows = conn.execute(query.where(sync_state.c.last_success_at >= since))
    return {(dataset, stream, resolution) for dataset, stream, resolution in rows}


def _watermarks(engine: Engine) -> dict[Scope, datetime]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sync_state))
        return {(r.dataset, r.stream_name, r.resolution): r.watermark for r in rows}


def test_a_crash_mid_batch_stores_nothing_of_it_and_the_next_cycle_fetches_it_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _cycle_setup(engine) as (sim, names):
        assert _run(engine, sim, names, NOW, one_batch=False).ok
        before = _watermarks(engine)
        calls: list[int] = []
        write = answer.write_answer

        def dies(*args: Any) -> Any:
            calls.append(1)
            if len(calls) > WRITES_BEFORE_THE_CRASH:
                raise RuntimeError("killed mid-batch")
            return write(*args)

        monkeypatch.setattr(batch, "write_answer", dies)
        with pytest.raises(RuntimeError, match="killed mid-batch"):
            _run(engine, sim, names, LATER, one_batch=True)
        assert len(calls) > WRITES_BEFORE_THE_CRASH  # the crash came after written answers
        with engine.connect() as conn:
            rows, succeeded = _new_rows(conn, LATER), _succeeded(conn, LATER)
        # No row without its scope's bookkeeping; no bookkeeping of the batch at all (only
        # the account's Month answers, a wave of their own before it, were stored), so none
        # without its rows; no watermark moved but with its answer.
        month_wave = {s for s in before if s[1] == "" and s[2] == "Month"}
        assert rows <= succeeded <= month_wave
        moved = {s for s, mark in _watermarks(engine).items() if mark != before[s]}
        assert moved <= succeeded

        monkeypatch.setattr(batch, "write_answer", write)
        report = _run(engine, sim, names, LATER, one_batch=True)
        assert report.ok, report.errors
        with engine.connect() as conn:
            rows, succeeded = _new_rows(conn, LATER), _succeeded(conn, LATER)
        assert succeeded == set(before)  # every scope's answer stored this time
        assert rows <= succeeded


def test_a_batch_the_database_refuses_is_stored_answer_by_answer(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _cycle_setup(engine) as (sim, names):
        assert _run(engine, sim, names, NOW, one_batch=False).ok
        write = answer.write_answer
        refused: list[int] = []

        def refuses_once(*args: Any) -> Any:
            if len(refused) == 0 and len(args[2]) > 0:
                refused.append(1)
                written = write(*args)  # in the batch's transaction, rolled back with it
                assert written.rows > 0
                raise DatabaseError("database error: could not serialize access")
            return write(*args)

        monkeypatch.setattr(batch, "write_answer", refuses_once)
        report: CycleReport = _run(engine, sim, names, LATER, one_batch=True)
        assert refused
        assert report.ok, report.errors
        assert report.requests == report.planned
        assert len(report.gaps) == len(set(report.gaps))  # none counted twice
        with engine.connect() as conn:
            assert _succeeded(conn, LATER) == set(_watermarks(engine))
