"""Sync state: watermarks, gaps and run history, written together with the rows they cover."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from archiver.rules.finality import Settlement
from archiver.rules.plan import Gap, Scope, ScopeState
from archiver.store.owed import Owed, book
from archiver.store.tables import USAGE_TABLES, sync_gaps, sync_runs, sync_state
from archiver.store.upsert import upsert_rows
from archiver.timeutil import Resolution
from archiver.vocabulary import RunKind, RunStatus


def load_state(conn: Connection) -> dict[Scope, ScopeState]:
    """Every scope's watermark and last success."""
    rows = conn.execute(
        sa.select(
            sync_state.c.dataset,
            sync_state.c.stream_name,
            sync_state.c.resolution,
            sync_state.c.watermark,
            sync_state.c.last_success_at,
        )
    )
    return {
        Scope(dataset, stream, Resolution(resolution)): ScopeState(watermark, last)
        for dataset, stream, resolution, watermark, last in rows
    }


def _key(scope: Scope) -> dict[str, str]:
    return {
        "dataset": scope.dataset,
        "stream_name": scope.stream,
        "resolution": scope.resolution.value,
    }


def _key_clause(scope: Scope) -> sa.ColumnElement[bool]:
    return sa.and_(
        sync_state.c.dataset == scope.dataset,
        sync_state.c.stream_name == scope.stream,
        sync_state.c.resolution == scope.resolution.value,
    )


# How many new scopes at once are a bulk worth fresh planner statistics.
ANALYZE_AFTER = 1000


def _dialect_insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def start_scopes(
    *,
    conn: Connection,
    watermarks: Mapping[Scope, datetime],
    gaps: Sequence[Gap],
    recorded_at: datetime,
) -> None:
    """Persist new scopes' first watermarks and the gaps the plan found, moving past them."""
    if watermarks:
        # One statement, a parameter set per scope: a new scope is inserted, a known one's
        # watermark only ever moves forward.
        insert = _dialect_insert(conn)(sync_state)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[c.name for c in sync_state.primary_key.columns],
                set_={"watermark": insert.excluded.watermark},
                where=sync_state.c.watermark < insert.excluded.watermark,
            ),
            [{**_key(scope), "watermark": mark} for scope, mark in watermarks.items()],
        )
        if len(watermarks) >= ANALYZE_AFTER and conn.dialect.name == "postgresql":
            # A bulk of new scopes (a first cycle after `streams import`): planner statistics
            # now, as the server may never take them itself (autovacuum off).
            conn.exec_driver_sql("ANALYZE sync_state")
    if gaps:
        upsert_rows(
            conn=conn,
            table=sync_gaps,
            rows=[
                {
                    **_key(g.scope),
                    "gap_start": g.start,
                    "gap_stop": g.stop,
                    "recorded_at": recorded_at,
                }
                for g in gaps
            ],
        )


@dataclass(frozen=True)
class Written:
    """What storing one response did."""

    rows: int
    advanced: int | None  # None: owed, not yet written


def moving(
    *, conn: Connection, dataset: str, scopes: Iterable[Scope], settlement: Settlement
) -> list[Scope]:
    """The scopes whose watermarks `store_response` moves with this settlement (read first,
    in the same transaction: a doubted zero is a gap only where the watermark passes it)."""
    low, high = settlement.moves_from
    by_name = {scope.stream: scope for scope in scopes}
    names = conn.execute(
        sa.select(sync_state.c.stream_name).where(
            sync_state.c.dataset == dataset,
            sync_state.c.resolution == settlement.resolution.value,
            sync_state.c.stream_name.in_(list(by_name)),
            sync_state.c.watermark >= low,
            sync_state.c.watermark < high,
        )
    ).scalars()
    return sorted(by_name[name] for name in names)


def store_response(
    *,
    conn: Connection,
    dataset: str,
    scopes: Iterable[Scope],
    rows: list[dict[str, Any]],
    settlement: Settlement,
    owed: Owed | None = None,
) -> Written:
    """Upsert a response's rows (their `is_final` and `fetched_at` already decided) and move
    its scopes' watermarks as `settlement` says, in the caller's transaction: now, or owed to
    `owed` with the rollups, for the caller to pay before it commits."""
    written = upsert_rows(conn=conn, table=USAGE_TABLES[dataset], rows=rows, owed=owed)
    low, high = settlement.moves_from
    at, resolution = settlement.fetched_at, settlement.resolution.value
    entries = [
        {
            "k_dataset": dataset,
            "k_stream": scope.stream,
            "k_resolution": resolution,
            "k_low": low,
            "k_high": high,
            "k_at": at,
        }
        for scope in scopes
    ]
    if owed is not None:
        owed.book(conn, entries)
        return Written(written, None)
    return Written(written, book(conn, entries))


def record_failure(*, conn: Connection, scopes: Iterable[Scope], error: str, at: datetime) -> None:
    """Note a failed request on its scopes; their watermarks stay where they were."""
    for scope in scopes:
        conn.execute(
            sa.update(sync_state)
            .where(_key_clause(scope))
            .values(last_error=error[:2000], last_error_at=at)
        )


def start_run(*, conn: Connection, kind: RunKind, started_at: datetime) -> int:
    """A run-history row for a cycle that has begun; returns its id."""
    result = conn.execute(
        sa.insert(sync_runs)
        .values(
            kind=kind,
            started_at=started_at,
            status=RunStatus.RUNNING,
            requests=0,
            failed_requests=0,
            rows_written=0,
            gaps=0,
        )
        .returning(sync_runs.c.id)
    )
    return int(result.scalar_one())


def finish_run(
    *,
    conn: Connection,
    run_id: int,
    finished_at: datetime,
    status: RunStatus,
    requests: int,
    failed_requests: int,
    rows_written: int,
    gaps: int,
    error: str | None,
    clock_skew_seconds: float | None = None,
    clock_problem: str | None = None,
) -> None:
    """Close a run-history row with the cycle's totals."""
    conn.execute(
        sa.update(sync_runs)
        .where(sync_runs.c.id == run_id)
        .values(
            finished_at=finished_at,
            status=status,
            requests=requests,
            failed_requests=failed_requests,
            rows_written=rows_written,
            gaps=gaps,
            error=None if error is None else error[:4000],
            clock_skew_seconds=clock_skew_seconds,
            clock_problem=None if clock_problem is None else clock_problem[:2000],
        )
    )


def interrupt_stale_runs(*, conn: Connection, at: datetime) -> int:
    """Mark runs left `running` by a dead process `interrupted`; call only with the lock held."""
    result = conn.execute(
        sa.update(sync_runs)
        .where(sync_runs.c.status == RunStatus.RUNNING)
        .values(status=RunStatus.INTERRUPTED, finished_at=at, error="the process ended mid-cycle")
    )
    return int(result.rowcount or 0)
