"""stream_country_monthly_usage (0015): each stream's Day rows of stream_geo_usage summed per
month and country, whatever sequence of writes came before, and as 0015 fills an old archive."""

from __future__ import annotations

from collections import defaultdict
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
from archiver.store.tables import stream_country_monthly_totals, stream_geo_usage
from archiver.store.upsert import upsert_rows
from tests.conftest import archive_at
from tests.test_query_times import geo

H = timedelta(hours=1)
# Twenty days each side of a month's end.
DAY0 = datetime(2026, 11, 11, tzinfo=UTC)
SUMS = ("publishes", "views", "publish_seconds", "view_seconds", "bytes_in", "bytes_out")
Sums = dict[tuple[str, datetime, str], tuple[int, ...]]


def _row(stream: str, resolution: str, offset: int, country: str, views: int, final: bool) -> Any:
    start = DAY0 + offset * H
    if resolution == "Day":
        start = DAY0 + (offset // 24) * 24 * H
    return {**geo(start, resolution, country, views), "stream_name": stream, "is_final": final}


def _expected(engine: Engine) -> Sums:
    """The archived Day rows summed per stream, month and country, here in Python."""
    sums: dict[tuple[str, datetime, str], list[int]] = defaultdict(lambda: [0] * 7)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(stream_geo_usage).where(stream_geo_usage.c.resolution == "Day")
        ).mappings()
        for r in rows:
            month = r["period_start"].replace(day=1, hour=0, minute=0, second=0)
            found = sums[(r["stream_name"], month, r["country"])]
            for i, name in enumerate(SUMS):
                found[i] += r[name]
            found[6] += 1
    return {key: tuple(values) for key, values in sums.items()}


def _rollup(engine: Engine) -> Sums:
    t = stream_country_monthly_totals
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t)).mappings()
        return {
            (r["stream_name"], r["month"], r["country"]): (
                *(int(r[name]) for name in SUMS),
                int(r["days_with_traffic"]),
            )
            for r in rows
        }


def _view(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT COUNT(*) FROM stream_country_monthly_usage WHERE views >= 0")
            ).scalar_one()
        )


# One write: stream, resolution, hour offset, country, views, final.
WRITE = st.tuples(
    st.sampled_from(["a", "b"]),
    st.sampled_from(["Hour", "Day"]),
    st.integers(0, 40 * 24 - 1),
    st.sampled_from(["US", "DE", "FR"]),
    st.integers(0, 10**9),
    st.booleans(),
)


def _apply(engine: Engine, writes: list[tuple[Any, ...]], batched: bool = False) -> None:
    """One transaction: each write an upsert of its own, the rollup paid at once (as the
    cycle's batches do: the same row may be written twice) or after each upsert."""
    owed = Owed() if batched else None
    with engine.begin() as conn:
        for write in writes:
            upsert_rows(conn=conn, table=stream_geo_usage, rows=[_row(*write)], owed=owed)
        if owed is not None:
            owed.pay(conn)


def test_the_rollup_equals_the_day_rows_summed(engine: Engine) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(st.lists(WRITE, min_size=1, max_size=8), st.booleans()),
            min_size=1,
            max_size=5,
        )
    )
    def check(transactions: list[tuple[list[tuple[Any, ...]], bool]]) -> None:
        with engine.begin() as conn:
            for table in ("stream_geo_usage", "stream_country_monthly_totals"):
                conn.execute(sa.text(f"DELETE FROM {table}"))
        for writes, batched in transactions:
            _apply(engine, writes, batched)
            expected = _expected(engine)
            assert _rollup(engine) == expected
            assert _view(engine) == len(expected)

    check()


def test_a_final_day_is_kept_and_hours_feed_nothing(engine: Engine) -> None:
    # Two months, two countries; a non-final read of a final day changes nothing (the
    # final-row guard), a final one replaces a partial one, hours are not summed.
    _apply(engine, [("a", "Day", 24 * 19, "US", 10, True), ("a", "Day", 24 * 20, "US", 5, False)])
    _apply(engine, [("a", "Day", 24 * 19, "US", 99, False), ("a", "Hour", 24 * 20, "US", 7, True)])
    _apply(engine, [("a", "Day", 24 * 20, "US", 6, True), ("a", "Day", 24 * 21, "DE", 2, True)])
    # One row written twice in a batched transaction: what is stored counts, once.
    _apply(
        engine, [("b", "Day", 24 * 3, "FR", 5, False), ("b", "Day", 24 * 3, "FR", 8, False)], True
    )
    nov, dec = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    got = {key: (values[1], values[6]) for key, values in _rollup(engine).items()}
    assert got == {
        ("a", nov, "US"): (10, 1),
        ("a", dec, "US"): (6, 1),
        ("a", dec, "DE"): (2, 1),
        ("b", nov, "FR"): (8, 1),
    }
    assert _rollup(engine) == _expected(engine)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def at_0014(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh archive migrated to 0014 only."""
    yield from archive_at(request, tmp_path, "0014")


def test_0015_fills_the_sums_of_an_archive_and_goes_back(at_0014: sa.Engine) -> None:
    with at_0014.begin() as conn:
        # Rows as 0014's write path left them: two streams, days over two months, three
        # countries, hours beside them.
        for n in range(80):
            stream, country = ("a", "b")[n % 2], ("US", "DE", "FR")[n % 3]
            for resolution in ("Day", "Hour"):
                row = _row(stream, resolution, 24 * (n // 2) + n % 5, country, n * 1_000, True)
                conn.execute(sa.insert(stream_geo_usage).values(**row))
    expected = _expected(at_0014)
    assert len({month for _, month, _ in expected}) == 2
    db.upgrade(at_0014)
    assert _rollup(at_0014) == expected
    assert _view(at_0014) == len(expected)
    with at_0014.begin() as conn:
        command.downgrade(db.alembic_config(conn), "0014")
    assert "stream_country_monthly_totals" not in sa.inspect(at_0014).get_table_names()
    assert "stream_country_monthly_usage" not in sa.inspect(at_0014).get_view_names()
