"""Usage attribution, mutant by mutant: the window's two edges and the warning's threshold.

Each test kills mutants of `archiver/reading/attribution.py` the older tests let live
(bench/MUTATION.md names them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from archiver.reading.attribution import Attribution, read_attribution, unexplained_warning
from archiver.store.tables import account_usage, stream_usage
from tests.test_reconciliation_views import put, usage

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SINCE = NOW - timedelta(days=7)


def test_the_window_holds_its_first_hour_and_not_the_hour_now_begins(engine: Engine) -> None:
    put(
        engine,
        account_usage,
        usage(SINCE - timedelta(hours=1), "Hour", 1),  # before the window
        usage(SINCE, "Hour", 10),  # its first hour
        usage(NOW - timedelta(hours=1), "Hour", 100),  # its last hour
        usage(NOW, "Hour", 1000),  # the hour now begins: not yet in
        usage(SINCE, "Day", 10_000),  # days are not hours
    )
    put(engine, stream_usage, usage(SINCE, "Hour", 4, stream_name="a"))
    with engine.connect() as conn:
        seen = read_attribution(conn, now=NOW)
    assert (seen.since, seen.until) == (SINCE, NOW)
    assert seen.account_bytes_out == 110
    assert seen.streams_bytes_out == 4
    assert seen.unattributed_bytes_out == 106
    assert seen.explained_share == 4 / 110


def _attribution(account_out: int, unattributed_out: int) -> Attribution:
    return Attribution(
        since=SINCE,
        until=NOW,
        account_bytes_in=0,
        account_bytes_out=account_out,
        streams_bytes_in=0,
        streams_bytes_out=account_out - unattributed_out,
        unattributed_bytes_out=unattributed_out,
        excess_bytes_out=0,
    )


def test_no_account_egress_is_no_share_and_no_warning() -> None:
    nothing = _attribution(0, 0)
    assert nothing.explained_share is None
    assert unexplained_warning(nothing, 10) is None


@pytest.mark.parametrize(
    ("unattributed", "warn_percent", "warns"),
    [
        (100, 25.0, False),  # exactly at the threshold: not more than it
        (100, 24.9, True),
        (20, 10.0, False),  # well under it
        (0, 0.0, False),  # everything explained, the strictest threshold
    ],
)
def test_the_warning_is_for_more_than_the_threshold_only(
    unattributed: int, warn_percent: float, warns: bool
) -> None:
    warning = unexplained_warning(_attribution(400, unattributed), warn_percent)
    assert (warning is not None) == warns


def test_the_warning_names_the_unexplained_percent_and_the_threshold() -> None:
    warning = unexplained_warning(_attribution(400, 100), 10)
    assert warning is not None
    assert warning.startswith(
        "25.0% of the account's egress over the last 7 days is explained by no archived "
        "stream (threshold 10%): "
    )
    assert "ARCHIVER_STREAMS" in warning
