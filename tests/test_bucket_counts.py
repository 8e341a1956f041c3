"""Bucket counts when the end lies a fraction of a second past a bucket start (issue #25)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st

from archiver.timeutil import Resolution, add_buckets, count_buckets, floor, next_start


def _walked(start: datetime, stop: datetime, resolution: Resolution) -> int:
    """The oracle: step from bucket to bucket, counting every start before `stop`."""
    count, current = 0, start
    while current < stop:
        count += 1
        current = next_start(current, resolution)
    return count


def test_an_end_half_a_second_past_the_hour_counts_the_bucket_it_began() -> None:
    start = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    stop = datetime(2026, 11, 26, 16, 0, 0, 500_000, tzinfo=UTC)
    assert count_buckets(start, stop, Resolution.HOUR) == 3


@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    whole=st.integers(min_value=0, max_value=40),
    past=st.integers(min_value=-999_999, max_value=999_999),
    resolution=st.sampled_from(list(Resolution)),
)
@example(
    start=datetime(2026, 11, 26, 14, tzinfo=UTC), whole=2, past=500_000, resolution=Resolution.HOUR
)
@example(start=datetime(2026, 1, 31, tzinfo=UTC), whole=1, past=1, resolution=Resolution.DAY)
@example(start=datetime(2026, 1, 1, tzinfo=UTC), whole=1, past=1, resolution=Resolution.MONTH)
def test_bucket_counts_near_a_boundary_equal_the_buckets_walked(
    start: datetime, whole: int, past: int, resolution: Resolution
) -> None:
    first = floor(start, resolution)
    # Within a second of a bucket boundary, on either side: where rounding to seconds bites.
    stop = add_buckets(first, resolution, whole) + timedelta(microseconds=past)
    assert count_buckets(first, stop, resolution) == _walked(first, stop, resolution)
