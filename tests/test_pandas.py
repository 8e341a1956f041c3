"""pandas reads the archive as README promises: UTC datetimes and int64 metrics, both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from archiver.store.tables import account_geo_usage, account_usage, stream_usage
from archiver.store.upsert import upsert_rows
from tests.test_query_times import geo, usage

D = datetime(2026, 11, 25, tzinfo=UTC)
BIG = 9_000_000_000_000_000  # beyond float64's exact integers: a float would lose it

# (query, time column, metric columns): README's views and a raw table.
QUERIES = [
    ("SELECT * FROM stream_daily_usage", "day", ["bytes_in", "bytes_out"]),
    ("SELECT * FROM account_daily_usage", "day", ["bytes_in", "bytes_out"]),
    ("SELECT * FROM stream_monthly_usage", "month", ["bytes_in", "bytes_out", "days_with_traffic"]),
    ("SELECT * FROM account_monthly_usage", "month", ["bytes_in", "bytes_out"]),
    ("SELECT * FROM country_daily_usage", "day", ["views", "view_seconds", "bytes_out"]),
    ("SELECT period_start, bytes_out FROM stream_usage", "period_start", ["bytes_out"]),
]


@pytest.fixture
def filled(engine: Engine) -> Engine:
    with engine.begin() as conn:
        upsert_rows(
            conn=conn,
            table=stream_usage,
            rows=[usage("a", "Hour", D + timedelta(hours=h), BIG // 4 + h) for h in range(3)]
            + [usage("b", "Day", D, BIG)],
        )
        upsert_rows(
            conn=conn,
            table=account_usage,
            rows=[usage(None, "Hour", D, 5), usage(None, "Month", D.replace(day=1), BIG)],
        )
        upsert_rows(conn=conn, table=account_geo_usage, rows=[geo(D, "Hour", "US", 3)])
    return engine


@pytest.mark.parametrize(("sql", "time", "metrics"), QUERIES, ids=[q[0][14:] for q in QUERIES])
def test_read_sql_gets_utc_times_and_int64(
    filled: Engine, sql: str, time: str, metrics: list[str]
) -> None:
    with filled.connect() as conn:
        frame = pd.read_sql(sql, conn, parse_dates={time: {"utc": True}})
    assert len(frame) > 0
    assert str(frame[time].dtype).startswith("datetime64[")
    assert str(frame[time].dt.tz) == "UTC"
    assert frame[time].min() >= pd.Timestamp("2026-11-01", tz="UTC")
    for metric in metrics:
        assert frame[metric].dtype == "int64", (metric, frame[metric].dtype)


def test_exact_big_sums(filled: Engine) -> None:
    with filled.connect() as conn:
        frame = pd.read_sql("SELECT * FROM stream_daily_usage ORDER BY stream_name", conn)
    assert frame["bytes_out"].tolist() == [sum(BIG // 4 + h for h in range(3)), BIG]
