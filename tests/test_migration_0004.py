"""Migration 0004 converts an existing archive in place: times, rollups and views."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from archiver.store import db
from archiver.timeutil import format_iso
from tests.conftest import archive_at

# Two hours and a day row of stream a, an hour of stream b, a sync state and a run, as 0002 wrote.
OLD_ROWS = """
INSERT INTO stream_usage (stream_name, resolution, period_start, bytes_in, bytes_out, fetched_at,
                          is_final)
VALUES ('a', 'Hour', {t}'2026-11-25 00:00:00{f}', 1, 10, {t}'2026-11-26 06:00:00.123456{f}', {yes}),
       ('a', 'Hour', {t}'2026-11-25 23:00:00{f}', 2, 20, {t}'2026-11-26 06:00:00.123456{f}', {yes}),
       ('a', 'Hour', {t}'2026-11-26 01:00:00{f}', 4, 40, {t}'2026-11-26 06:00:00{f}', {no}),
       ('b', 'Hour', {t}'2026-11-26 01:00:00{f}', 8, 80, {t}'2026-11-26 06:00:00{f}', {yes}),
       ('a', 'Day', {t}'2026-11-26 00:00:00{f}', 16, 160, {t}'2026-11-26 06:00:00{f}', {no});
INSERT INTO sync_state (dataset, stream_name, resolution, watermark, last_success_at)
VALUES ('stream_usage', 'a', 'Hour', {t}'2026-11-26 05:00:00{f}', {t}'2026-11-26 06:00:01.5{f}');
INSERT INTO sync_runs (kind, started_at, status, requests, failed_requests, rows_written, gaps)
VALUES ('sync', {t}'2026-11-26 06:00:00.25{f}', 'ok', 1, 0, 5, 0)
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def at_0002(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh archive migrated to 0002 only."""
    yield from archive_at(request, tmp_path, "0002")


def _fill_old(engine: sa.Engine) -> None:
    sqlite = engine.dialect.name == "sqlite"
    sql = OLD_ROWS.format(
        t="" if sqlite else "TIMESTAMPTZ ",
        f=".000000" if sqlite else "+00",
        yes="1" if sqlite else "true",
        no="0" if sqlite else "false",
    )
    # 0002's SQLite form is fixed-width microseconds; the sample's shorter fractions stay valid.
    if sqlite:
        sql = sql.replace(".123456.000000", ".123456").replace(".5.000000", ".500000")
        sql = sql.replace(".25.000000", ".250000")
    with engine.begin() as conn:
        for statement in sql.strip().split(";"):
            conn.execute(sa.text(statement))


def _norm(value: object) -> str:
    # One spelling for either time form, so that before and after compare.
    if isinstance(value, datetime):
        return format_iso(value)
    text = str(value)
    if re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", text):
        return text[:10] + "T" + text[11:19] + "Z"
    return text


def _texts(engine: sa.Engine, sql: str, *, raw: bool = False) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(str(v) if raw else _norm(v) for v in row) for row in conn.execute(sa.text(sql))
        ]


def test_upgrade_converts_times_and_builds_rollups(at_0002: sa.Engine) -> None:
    engine = at_0002
    _fill_old(engine)
    daily_before = _texts(engine, "SELECT * FROM stream_daily_usage ORDER BY stream_name, day")
    monthly_before = _texts(engine, "SELECT * FROM stream_monthly_usage ORDER BY stream_name")
    db.upgrade(engine)
    assert (
        _texts(engine, "SELECT * FROM stream_daily_usage ORDER BY stream_name, day") == daily_before
    )
    assert (
        _texts(engine, "SELECT * FROM stream_monthly_usage ORDER BY stream_name") == monthly_before
    )
    assert daily_before == [
        (
            "a",
            "2026-11-25T00:00:00Z",
            "3",
            "30",
            "1" if engine.dialect.name == "sqlite" else "True",
            "Hour",
        ),
        (
            "a",
            "2026-11-26T00:00:00Z",
            "16",
            "160",
            "0" if engine.dialect.name == "sqlite" else "False",
            "Day",
        ),
        (
            "b",
            "2026-11-26T00:00:00Z",
            "8",
            "80",
            "1" if engine.dialect.name == "sqlite" else "True",
            "Hour",
        ),
    ]
    if engine.dialect.name == "sqlite":
        assert _texts(
            engine, "SELECT fetched_at FROM stream_usage ORDER BY period_start LIMIT 1", raw=True
        ) == [("2026-11-26T06:00:00Z",)]
        assert _texts(engine, "SELECT watermark, last_success_at FROM sync_state", raw=True) == [
            ("2026-11-26T05:00:00Z", "2026-11-26T06:00:01Z")
        ]
        assert _texts(engine, "SELECT started_at FROM sync_runs", raw=True) == [
            ("2026-11-26T06:00:00Z",)
        ]
    with engine.connect() as conn:
        hits = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM stream_usage WHERE period_start >= '2026-11-25T00:00:00Z' "
                "AND period_start < '2026-11-26T00:00:00Z'"
            )
        ).scalar_one()
    assert hits == 2


def test_downgrade_restores_the_0002_form(at_0002: sa.Engine) -> None:
    engine = at_0002
    _fill_old(engine)
    daily_before = _texts(engine, "SELECT * FROM stream_daily_usage ORDER BY stream_name, day")
    db.upgrade(engine)
    with engine.begin() as conn:
        command.downgrade(db.alembic_config(conn), "0002")
    assert (
        _texts(engine, "SELECT * FROM stream_daily_usage ORDER BY stream_name, day") == daily_before
    )
    if engine.dialect.name == "sqlite":
        assert _texts(engine, "SELECT MIN(period_start) FROM stream_usage", raw=True) == [
            ("2026-11-25 00:00:00.000000",)
        ]
