"""Migration 0012 fills the viewer rollups from an archive's rows: the views read the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from archiver.reading.export import _as_text
from archiver.store import db
from archiver.store.tables import account_viewer_stats, stream_viewer_stats
from tests.conftest import archive_at

DAY = datetime(2026, 11, 20, tzinfo=UTC)
FETCHED = datetime(2026, 11, 21, tzinfo=UTC)
VIEWS = (
    "stream_hourly_viewers",
    "stream_daily_viewers",
    "account_hourly_viewers",
    "account_daily_viewers",
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def at_0011(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh archive migrated to 0011 only."""
    yield from archive_at(request, tmp_path, "0011")


def rows(minutes: list[int], **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "period_start": DAY + timedelta(minutes=m),
            "active_viewers": (m * 7) % 23,
            "views_started": m % 5,
            "views_ended": m % 3,
            "fetched_at": FETCHED,
            "is_final": m < 1400,
            **extra,
        }
        for m in minutes
    ]


def views(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            name: [
                tuple(_as_text(v) if isinstance(v, datetime | str) else v for v in row)
                for row in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY 1, 2"))
            ]
            for name in VIEWS
        }


def test_0012_fills_the_rollups_and_the_views_read_as_before(at_0011: sa.Engine) -> None:
    five = list(range(0, 2880, 5))
    with at_0011.begin() as conn:
        conn.execute(sa.insert(stream_viewer_stats), rows(five[::3], stream_name="a"))
        conn.execute(sa.insert(stream_viewer_stats), rows(five[100:200], stream_name="b"))
        conn.execute(sa.insert(account_viewer_stats), rows(five[::2], streams=2))
    before = views(at_0011)
    assert all(before.values())
    db.upgrade(at_0011)
    after = views(at_0011)
    assert after == before
    with at_0011.connect() as conn:
        for table in ("stream_daily_periods", "account_hourly_periods"):
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one() > 0
