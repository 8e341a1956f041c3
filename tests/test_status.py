"""`status` and `health` from the database alone: bucket counts by arithmetic, odd clocks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.reading.status import next_interval_cycle
from archiver.store import db
from archiver.store.tables import sync_runs
from archiver.timeutil import Resolution, buckets, count_buckets, floor
from tests.processes import Ran

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


# No deadline: walking ten years of hours on a loaded machine outlasted the default 200 ms.
@settings(deadline=None)
@given(start=instants, stop=instants, resolution=st.sampled_from(list(Resolution)))
def test_bucket_counts_equal_the_buckets_enumerated(
    start: datetime, stop: datetime, resolution: Resolution
) -> None:
    first = floor(start, resolution)
    # The oracle walks the buckets one by one; the code under test must not.
    assert count_buckets(first, stop, resolution) == sum(
        1 for _ in buckets(first, stop, resolution)
    )


def test_the_next_interval_cycle_follows_the_last_start() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert next_interval_cycle(now, None, 60) == now
    last = now - timedelta(seconds=20)
    assert next_interval_cycle(now, last, 60) == last + timedelta(seconds=60)
    assert next_interval_cycle(now, now - timedelta(hours=1), 60) == now


def _archive_with_success(tmp_path: Path, finished: datetime) -> str:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(sync_runs).values(
                kind="service",
                started_at=finished - timedelta(minutes=1),
                finished_at=finished,
                status="ok",
                requests=1,
                failed_requests=0,
                rows_written=1,
                gaps=0,
            )
        )
    engine.dispose()
    return url


@pytest.mark.parametrize(
    ("now", "code", "expected"),
    [
        ("2026-11-26T12:10:00Z", 0, "healthy: last successful cycle 10 min ago"),
        ("2026-11-26T13:00:00Z", 1, "unhealthy: last successful cycle 60 min ago"),
        # The host clock went back a little: healthy, with the skew named.
        ("2026-11-26T11:30:00Z", 0, "30 min ahead of this host's clock"),
        # Three days back: not "-4320 min ago", and no free pass for a dead service.
        ("2026-11-23T12:00:00Z", 1, "4320 min in the future"),
    ],
)
def test_health_reads_the_age_of_the_last_success(
    tmp_path: Path, now: str, code: int, expected: str, cli: Callable[..., Ran]
) -> None:
    url = _archive_with_success(tmp_path, datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    result = cli(["health"], tmp_path, ARCHIVER_DATABASE_URL=url, ARCHIVER_NOW=now)
    assert result.returncode == code, result.stderr
    assert expected in result.stdout + result.stderr
    assert " -" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("skew", "expected"),
    [
        (7200.4, "this host's clock is 120 min behind the vendor's"),
        (-86400.0, "this host's clock is 1440 min ahead of the vendor's"),
        (59.0, None),
        (None, None),
    ],
)
def test_status_names_a_host_clock_off_the_vendors(
    tmp_path: Path, skew: float | None, expected: str | None, cli: Callable[..., Ran]
) -> None:
    url = _archive_with_success(tmp_path, datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.update(sync_runs).values(clock_skew_seconds=skew))
    engine.dispose()
    result = cli(
        ["status"], tmp_path, ARCHIVER_DATABASE_URL=url, ARCHIVER_NOW="2026-11-26T12:05:00Z"
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("clock:")]
    if expected is None:
        assert lines == []
    else:
        assert len(lines) == 1
        assert expected in lines[0]
