"""A cycle's run-history row, opened and closed by `sync.recorded_run` however the cycle
ends, on real SQLite and real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.errors import TransportError
from archiver.cycle.report import CycleReport
from archiver.cycle.sync import recorded_run
from archiver.store.tables import sync_runs
from archiver.vocabulary import RunKind
from tests.test_sync_paths import NOW, settings


def _runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sync_runs).order_by(sync_runs.c.id))
        return [dict(row._mapping) for row in rows]


def test_a_run_is_open_while_the_cycle_runs_and_closed_with_its_totals(engine: Engine) -> None:
    report = CycleReport(kind=RunKind.BACKFILL, now=NOW)
    with recorded_run(engine, settings(now=NOW + timedelta(minutes=5)), report):
        (run,) = _runs(engine)
        assert (run["kind"], run["status"], run["started_at"]) == ("backfill", "running", NOW)
        report.requests, report.failed, report.rows = 3, 1, 7
        report.errors.append("one request failed")
    (run,) = _runs(engine)
    assert run["status"] == "partial"
    assert run["finished_at"] == NOW + timedelta(minutes=5)
    assert (run["requests"], run["failed_requests"], run["rows_written"]) == (3, 1, 7)
    assert run["error"] == "one request failed"


def test_an_api_error_is_recorded_by_its_text_and_raised(engine: Engine) -> None:
    report = CycleReport(kind=RunKind.SYNC, now=NOW)
    with pytest.raises(TransportError), recorded_run(engine, settings(), report):
        raise TransportError("vendor.invalid: timed out")
    (run,) = _runs(engine)
    assert (run["status"], run["error"]) == ("failed", "vendor.invalid: timed out")


def test_any_other_error_is_recorded_with_its_type_and_raised(engine: Engine) -> None:
    report = CycleReport(kind=RunKind.SYNC, now=NOW)
    with pytest.raises(KeyError), recorded_run(engine, settings(), report):
        raise KeyError("cam")
    (run,) = _runs(engine)
    assert (run["status"], run["error"]) == ("failed", "KeyError: 'cam'")
