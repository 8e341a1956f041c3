"""The sync-state store: failures and successes noted on their scopes, watermark boundaries,
and stale runs, on real SQLite and real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.rules.finality import Settlement
from archiver.rules.plan import Policy, Scope
from archiver.store import state
from archiver.store.tables import sync_runs, sync_state
from archiver.timeutil import Resolution
from archiver.vocabulary import RunKind, RunStatus

H = Resolution.HOUR
POLICY = Policy(settle=timedelta(minutes=60))
T0 = datetime(2026, 11, 20, tzinfo=UTC)
LATER = T0 + timedelta(days=3)  # every hour of the chunks below is final when read then
A = Scope("stream_usage", "a", H)
B = Scope("stream_usage", "b", H)
C = Scope("stream_usage", "c", H)


def scope_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per stream name: watermark, last success, last error and when."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                sync_state.c.stream_name,
                sync_state.c.watermark,
                sync_state.c.last_success_at,
                sync_state.c.last_error,
                sync_state.c.last_error_at,
            )
        )
        return {row.stream_name: dict(row._mapping) for row in rows}


def start(engine: Engine, watermarks: dict[Scope, datetime]) -> None:
    with engine.begin() as conn:
        state.start_scopes(conn=conn, watermarks=watermarks, gaps=[], recorded_at=T0)


def test_a_failure_is_noted_on_its_scopes_only_and_moves_no_watermark(engine: Engine) -> None:
    start(engine, {A: T0, B: T0, C: T0})
    at = T0 + timedelta(hours=5)
    with engine.begin() as conn:
        state.record_failure(conn=conn, scopes=[A, B], error="x" * 2500, at=at)
    rows = scope_rows(engine)
    for name in ("a", "b"):
        assert rows[name]["last_error"] == "x" * 2000  # bounded
        assert rows[name]["last_error_at"] == at
        assert rows[name]["watermark"] == T0
    assert rows["c"]["last_error"] is None
    assert rows["c"]["last_error_at"] is None


def test_a_stored_response_clears_the_error_and_notes_the_success(engine: Engine) -> None:
    start(engine, {A: T0, B: T0})
    with engine.begin() as conn:
        state.record_failure(conn=conn, scopes=[A, B], error="timed out", at=T0)
    settlement = Settlement(POLICY, H, T0, T0 + timedelta(hours=10), LATER)
    with engine.begin() as conn:
        state.store_response(
            conn=conn, dataset="stream_usage", scopes=[A], rows=[], settlement=settlement
        )
    rows = scope_rows(engine)
    assert rows["a"]["last_success_at"] == LATER
    assert rows["a"]["last_error"] is None
    assert rows["a"]["last_error_at"] is None
    assert rows["a"]["watermark"] == T0 + timedelta(hours=10)
    # Scopes of the same dataset and resolution that the response did not cover keep theirs.
    assert rows["b"]["last_success_at"] is None
    assert rows["b"]["last_error"] == "timed out"


def test_a_watermark_already_at_the_target_is_not_counted_as_advanced(engine: Engine) -> None:
    target = T0 + timedelta(hours=10)
    start(engine, {A: target, B: T0})
    settlement = Settlement(POLICY, H, T0, target, LATER)
    assert settlement.target == target
    with engine.begin() as conn:
        written = state.store_response(
            conn=conn, dataset="stream_usage", scopes=[A, B], rows=[], settlement=settlement
        )
    assert written.advanced == 1  # only b moved; a was already there
    rows = scope_rows(engine)
    assert rows["a"]["watermark"] == target
    assert rows["b"]["watermark"] == target


def test_start_scopes_inserts_new_scopes_and_moves_known_ones_only_forward(
    engine: Engine,
) -> None:
    start(engine, {A: T0})
    start(engine, {A: T0 - timedelta(hours=1)})
    assert scope_rows(engine)["a"]["watermark"] == T0
    start(engine, {A: T0})  # equal: stays, and is not inserted twice
    assert scope_rows(engine)["a"]["watermark"] == T0
    start(engine, {A: T0 + timedelta(hours=1), B: T0})
    rows = scope_rows(engine)
    assert rows["a"]["watermark"] == T0 + timedelta(hours=1)
    assert rows["b"]["watermark"] == T0


def _runs(engine: Engine) -> dict[int, tuple[str, datetime | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                sync_runs.c.id, sync_runs.c.status, sync_runs.c.finished_at, sync_runs.c.error
            )
        )
        return {row.id: (row.status, row.finished_at, row.error) for row in rows}


def test_only_runs_left_running_become_interrupted(engine: Engine) -> None:
    ended = T0 + timedelta(minutes=1)
    with engine.begin() as conn:
        ids = [state.start_run(conn=conn, kind=RunKind.SYNC, started_at=T0) for _ in range(4)]
        for run_id, status, error in (
            (ids[0], RunStatus.OK, None),
            (ids[2], RunStatus.PARTIAL, "timed out"),
        ):
            state.finish_run(
                conn=conn,
                run_id=run_id,
                finished_at=ended,
                status=status,
                requests=1,
                failed_requests=0,
                rows_written=0,
                gaps=0,
                error=error,
            )
    at = T0 + timedelta(hours=1)
    with engine.begin() as conn:
        assert state.interrupt_stale_runs(conn=conn, at=at) == 2
    runs = _runs(engine)
    assert runs[ids[0]] == ("ok", ended, None)
    assert runs[ids[2]] == ("partial", ended, "timed out")
    for run_id in (ids[1], ids[3]):
        assert runs[run_id] == ("interrupted", at, "the process ended mid-cycle")
    with engine.begin() as conn:
        assert state.interrupt_stale_runs(conn=conn, at=at) == 0
