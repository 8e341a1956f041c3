"""usage_attribution over stream_period_totals (0014): the same rows as 0008's definition,
which summed the stream rows at each read, after any sequence of writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from archiver.store import db
from archiver.store.owed import Owed
from archiver.store.tables import account_usage, stream_usage
from archiver.store.upsert import upsert_rows
from bench.common import migration
from tests.conftest import archive_at
from tests.test_query_times import usage

H = timedelta(hours=1)
DAY0 = datetime(2026, 11, 20, tzinfo=UTC)
COLUMNS = (
    "resolution, period_start, account_bytes_in, account_bytes_out, streams_bytes_in, "
    "streams_bytes_out, unattributed_bytes_in, unattributed_bytes_out, streams, is_final, "
    "excess_bytes_in, excess_bytes_out"
)


@pytest.fixture
def old_view(engine: Engine) -> Iterator[Engine]:
    """0008's view beside the current one, as `attribution_0008` (its own copy, in 0014)."""
    sql = migration("0014_attribution_rollup.py")._old_view(engine.dialect.name)
    with engine.begin() as conn:
        conn.execute(sa.text(sql.replace("VIEW usage_attribution", "VIEW attribution_0008")))
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP VIEW attribution_0008"))


def _rows(engine: Engine, view: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(f"SELECT {COLUMNS} FROM {view} ORDER BY resolution, period_start")
        )
        # SQLite's views return booleans as 0/1: compare them as booleans.
        return [(*row[:9], bool(row[9]), *row[10:]) for row in found]


# One write: (stream or None for the account, resolution, hour offset, bytes out, final).
WRITE = st.tuples(
    st.sampled_from(["a", "b", "c", None]),
    st.sampled_from(["Hour", "Day"]),
    st.integers(0, 47),
    st.integers(0, 10**12),
    st.booleans(),
)


def _apply(engine: Engine, writes: list[tuple[Any, ...]], batched: bool = False) -> None:
    """One transaction: each write an upsert of its own, its rollups paid at once (as the
    cycle's batches do: the same row may be written twice) or after each upsert."""
    owed = Owed() if batched else None
    with engine.begin() as conn:
        for stream, resolution, offset, out, final in writes:
            start = DAY0 + offset * H
            if resolution == "Day":
                start = DAY0 + (offset // 24) * 24 * H
            table = account_usage if stream is None else stream_usage
            row = usage(stream, resolution, start, out, final)
            upsert_rows(conn=conn, table=table, rows=[row], owed=owed)
        if owed is not None:
            owed.pay(conn)


def test_the_view_equals_the_streams_summed_at_read_time(old_view: Engine) -> None:
    engine = old_view

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(st.lists(WRITE, min_size=1, max_size=6), st.booleans()),
            min_size=1,
            max_size=5,
        )
    )
    def check(transactions: list[tuple[list[tuple[Any, ...]], bool]]) -> None:
        with engine.begin() as conn:
            for table in ("stream_usage", "account_usage", "stream_period_totals"):
                conn.execute(sa.text(f"DELETE FROM {table}"))
        for writes, batched in transactions:
            _apply(engine, writes, batched)
            assert _rows(engine, "usage_attribution") == _rows(engine, "attribution_0008")

    check()


def test_a_bucket_of_many_streams_and_a_final_row_kept(old_view: Engine) -> None:
    # Three streams in one hour, one of them not final; a non-final read of a final row
    # changes nothing (the final-row guard), a final one replaces it, a row written twice in
    # one transaction counts once: the sums follow what is stored.
    engine = old_view
    _apply(engine, [("a", "Hour", 5, 100, True), ("b", "Hour", 5, 20, False)])
    _apply(engine, [("c", "Hour", 5, 3, True), (None, "Hour", 5, 200, True)])
    _apply(engine, [("a", "Hour", 5, 999, False), ("b", "Hour", 5, 25, False)], batched=True)
    _apply(engine, [("b", "Hour", 5, 30, True), ("b", "Hour", 5, 31, True)], batched=True)
    rows = _rows(engine, "usage_attribution")
    assert [r[4:10] for r in rows] == [(44, 134, 22, 66, 3, True)]
    assert rows == _rows(engine, "attribution_0008")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def at_0013(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh archive migrated to 0013 only."""
    yield from archive_at(request, tmp_path, "0013")


def test_0014_fills_the_sums_of_an_archive_and_goes_back(at_0013: sa.Engine) -> None:
    with at_0013.begin() as conn:
        # Rows as 0013's write path left them (stream_period_totals does not exist yet): each
        # of two streams and the account on 6 hours and 6 days, a third of them not final.
        n = 0
        for stream in ("a", "b", None):
            for k in range(6):
                for resolution, start in (("Hour", DAY0 + 7 * k * H), ("Day", DAY0 + 24 * k * H)):
                    n += 1
                    row = usage(stream, resolution, start, n * 1_000 + 1, n % 3 != 0)
                    table = account_usage if stream is None else stream_usage
                    conn.execute(sa.insert(table).values(**row))
    before = _rows(at_0013, "usage_attribution")
    assert len(before) > 10
    assert any(r[8] == 2 for r in before)
    db.upgrade(at_0013)
    assert _rows(at_0013, "usage_attribution") == before
    with at_0013.begin() as conn:
        filled = conn.execute(sa.text("SELECT COUNT(*) FROM stream_period_totals")).scalar_one()
    assert filled > 0
    with at_0013.begin() as conn:
        command.downgrade(db.alembic_config(conn), "0013")
    assert _rows(at_0013, "usage_attribution") == before
