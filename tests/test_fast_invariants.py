"""Fast guards of invariants that mutants once slipped past (issue 21, item 7).

Every metric is required (none defaults to 0), a scheduled cycle never runs without the
instance lock, the client itself scrubs the token from every error text (not only the log
filter), and the attribution sums hourly rows only. No sockets: a fake vendor behind
`httpx.MockTransport`; real SQLite and real PostgreSQL where the database is involved.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient
from archiver.api.errors import ApiError, ResponseFormatError
from archiver.api.options import ClientOptions
from archiver.api.retry import RetryPolicy
from archiver.datasets import (
    ACCOUNT_GEO_SERIES,
    ACCOUNT_SERIES,
    STREAMS_GEO_SERIES,
    STREAMS_SERIES,
    Endpoint,
)
from archiver.reading.attribution import read_attribution
from archiver.service import runner
from archiver.service.lock import lock_for
from archiver.store.tables import account_usage, stream_usage, sync_runs, sync_state
from archiver.store.upsert import upsert_rows
from archiver.timeutil import Resolution
from archiver.vocabulary import ApiRequest
from tests.processes import Ran
from tests.test_sync_paths import Vendor, cycle, settings

TOKEN = "a-test-secret-for-the-fake-vendor"  # tests.test_sync_paths.settings() uses it
T0 = datetime(2026, 11, 20, tzinfo=UTC)
HOUR = ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1))
BUCKET = "2026-11-20T00:00:00Z"
USAGE = {"bytesIn": 3, "bytesOut": 4}
GEO = {
    "publishes": 1,
    "views": 2,
    "publishDuration": 3,
    "viewDuration": 4,
    "bytesOut": 5,
    "bytesIn": 6,
}


def client(answer: Callable[[httpx.Request], httpx.Response], **options: Any) -> AnalyticsClient:
    defaults: dict[str, Any] = {
        "base_url": "https://api.millicast.com",
        "token": TOKEN,
        "transport": httpx.MockTransport(answer),
        "sleep": lambda _: None,
        "rng": lambda: 0.5,
        "retry": RetryPolicy(max_attempts=1),
    }
    defaults.update(options)
    return AnalyticsClient(**defaults)


def success(data: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, json={"status": "success", "data": data})


# --- every metric is required: a missing one is never stored as 0 ---------------------------


def _series() -> dict[str, Any]:
    """One hour of `*/series` with every block present and traffic in each."""
    return {
        "bandwidth": {BUCKET: dict(USAGE)},
        "standardStream": {BUCKET: dict(USAGE)},
        "restream": {BUCKET: {**USAGE, "secondsUsed": 7}},
        "geoCascade": {BUCKET: dict(USAGE)},
    }


def _cases() -> list[tuple[Endpoint, str, str]]:
    cases = []
    for endpoint in (ACCOUNT_SERIES, STREAMS_SERIES):
        for block, metrics in _series().items():
            cases += [(endpoint, block, metric) for metric in metrics[BUCKET]]
    for endpoint in (ACCOUNT_GEO_SERIES, STREAMS_GEO_SERIES):
        cases += [(endpoint, "geo", metric) for metric in GEO]
    return cases


def _answer(endpoint: Endpoint, block: str, missing: str | None) -> tuple[Any, ApiRequest]:
    """A well-formed answer for one hour and one stream, `missing` taken out of `block`."""
    if endpoint in (ACCOUNT_SERIES, STREAMS_SERIES):
        series = _series()
        if missing is not None:
            del series[block][BUCKET][missing]
        data: Any = series if endpoint is ACCOUNT_SERIES else {"cam": series}
    else:
        usage = dict(GEO)
        if missing is not None:
            del usage[missing]
        buckets = {BUCKET: {"FR": usage}}
        data = {"geo": buckets if endpoint is ACCOUNT_GEO_SERIES else {"cam": buckets}}
    names = ("cam",) if endpoint.takes_streams else ()
    return data, ApiRequest(endpoint, Resolution.HOUR, T0, T0 + timedelta(hours=1), names)


@pytest.mark.parametrize(
    ("endpoint", "block", "metric"),
    _cases(),
    ids=[
        f"{e.path.rsplit('/', 2)[-2]}/{e.path.rsplit('/', 1)[-1]}-{b}-{m}" for e, b, m in _cases()
    ],
)
def test_every_metric_of_every_series_is_required(
    endpoint: Endpoint, block: str, metric: str
) -> None:
    whole, request = _answer(endpoint, block, None)
    with client(success(whole)) as sound:
        assert len(sound.fetch(request).rows) == 1  # the answer is sound but for the metric
    broken, request = _answer(endpoint, block, metric)
    with client(success(broken)) as vendor:
        if endpoint.takes_streams:
            result = vendor.fetch(request)
            assert result.rows == []
            assert f"{metric}: Field required" in result.failed["cam"]
        else:
            with pytest.raises(ResponseFormatError, match=f"{metric}: Field required"):
                vendor.fetch(request)


# --- a scheduled cycle never runs without the instance lock --------------------------------


def test_a_scheduled_cycle_without_the_lock_asks_and_writes_nothing(
    database_url: str,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    vendor = Vendor()

    class Faked(AnalyticsClient):
        @classmethod
        def from_options(cls, options: ClientOptions, **overrides: Any) -> AnalyticsClient:
            overrides.update(transport=httpx.MockTransport(vendor), sleep=lambda _: None)
            return AnalyticsClient.from_options(options, **overrides)

    monkeypatch.setattr(runner, "AnalyticsClient", Faked)
    config = settings(database_url=database_url, streams=["cam"])
    other = lock_for(engine)  # another archiver, active
    assert other.try_acquire()
    service = runner.Service(config, engine)
    try:
        service.cycle()
        assert vendor.asked == []
        assert "skipping a cycle: the" in caplog.text
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(sync_runs)).scalar() == 0
        other.release()
        assert service.lock.try_acquire()
        service.cycle()  # holding it, the same service does run and write
        assert vendor.asked
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(sync_runs)).scalar() == 1
    finally:
        service.lock.release()
        other.release()


# --- the client scrubs the token from its own error texts ----------------------------------
# No logging filter is installed here: what is asserted is the text itself, which goes into
# sync_state.last_error and sync_runs.error.


def test_a_token_echoed_in_a_vendor_refusal_is_out_of_the_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        body = {"status": "fail", "data": {"message": f"bad {TOKEN}", "errors": {TOKEN: [TOKEN]}}}
        return httpx.Response(400, json=body)

    with client(refuse) as vendor, pytest.raises(ApiError) as info:
        vendor.fetch(HOUR)
    assert TOKEN not in str(info.value)
    assert "[redacted]" in str(info.value)


def test_a_token_in_the_envelope_is_out_of_the_format_error() -> None:
    # Refused while decoding (the metric is not an integer): the message names the key.
    bad = {"bandwidth": {TOKEN: {"bytesIn": "x", "bytesOut": 0}}}
    with client(success(bad)) as vendor, pytest.raises(ResponseFormatError) as info:
        vendor.fetch(HOUR)
    assert TOKEN not in str(info.value)
    assert "[redacted]" in str(info.value)


def test_a_token_as_a_time_key_is_out_of_the_format_error() -> None:
    # Decoded fine, refused by the parser: a time key that is no bucket of the window.
    bad = {"bandwidth": {TOKEN: dict(USAGE)}}
    with client(success(bad)) as vendor, pytest.raises(ResponseFormatError) as info:
        vendor.fetch(HOUR)
    assert TOKEN not in str(info.value)
    assert "[redacted]" in str(info.value)


def test_a_token_in_one_streams_part_is_out_of_its_failure() -> None:
    request = ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1), ("cam",))
    with client(success({"cam": {"bandwidth": {TOKEN: dict(USAGE)}}})) as vendor:
        result = vendor.fetch(request)
    assert TOKEN not in result.failed["cam"]
    assert "[redacted]" in result.failed["cam"]


def test_a_token_in_a_retried_error_is_out_of_the_log_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter([httpx.Response(503, json={"status": "error", "message": f"down {TOKEN}"})])

    def answer(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json={"status": "success", "data": {}}))

    caplog.set_level(logging.WARNING)
    retrying = client(answer, retry=RetryPolicy(max_attempts=2))
    with retrying as vendor, pytest.raises(ResponseFormatError):
        vendor.fetch(HOUR)  # the second answer lacks `bandwidth`
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 1
    assert TOKEN not in retried[0]
    assert "[redacted]" in retried[0]


def test_a_token_echoed_in_a_streams_part_never_reaches_the_archive(engine: Engine) -> None:
    vendor = Vendor()

    def bend(path: str, resolution: Resolution, data: dict[str, Any]) -> None:
        if path.endswith("/analytics/streams/series") and "cam" in data:
            data["cam"]["bandwidth"][TOKEN] = dict(USAGE)

    vendor.bend = bend
    report = cycle(engine, vendor, settings(streams=["cam"]))
    assert not report.ok
    with engine.connect() as conn:
        errors = [
            *conn.execute(sa.select(sync_state.c.last_error)).scalars(),
            *conn.execute(sa.select(sync_runs.c.error)).scalars(),
        ]
    texts = [e for e in errors if e]
    assert texts
    assert all(TOKEN not in e for e in texts)
    assert any("[redacted]" in e for e in texts)


# --- the attribution sums hourly rows only --------------------------------------------------


def _usage(start: datetime, resolution: str, bytes_out: int, **key: str) -> dict[str, Any]:
    return {
        **key,
        "resolution": resolution,
        "period_start": start,
        "bytes_in": bytes_out // 2,
        "bytes_out": bytes_out,
        "standard_bytes_in": None,
        "standard_bytes_out": None,
        "restream_bytes_in": None,
        "restream_bytes_out": None,
        "restream_seconds": None,
        "cascade_bytes_in": None,
        "cascade_bytes_out": None,
        "fetched_at": NOW,
        "is_final": True,
    }


NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAY = datetime(2026, 11, 18, tzinfo=UTC)


def _archive_hours_and_their_day(engine: Engine) -> None:
    """Two hours of account and stream usage, and the day row that holds the same bytes."""
    hours = [DAY + timedelta(hours=h) for h in (5, 6)]
    with engine.begin() as conn:
        account = [_usage(t, "Hour", 1000) for t in hours]
        upsert_rows(conn=conn, table=account_usage, rows=[*account, _usage(DAY, "Day", 2000)])
        streams = [_usage(t, "Hour", 300, stream_name="cam") for t in hours]
        day = _usage(DAY, "Day", 600, stream_name="cam")
        upsert_rows(conn=conn, table=stream_usage, rows=[*streams, day])


def test_the_attribution_counts_each_byte_once(engine: Engine) -> None:
    _archive_hours_and_their_day(engine)
    with engine.connect() as conn:
        seen = read_attribution(conn, now=NOW)
    assert (seen.account_bytes_out, seen.streams_bytes_out) == (2000, 600)
    assert (seen.account_bytes_in, seen.streams_bytes_in) == (1000, 300)
    assert seen.unattributed_bytes_out == 1400


def test_status_reports_the_hourly_bytes_not_hours_plus_days(
    database_url: str, engine: Engine, tmp_path: Any, cli: Callable[..., Ran]
) -> None:
    _archive_hours_and_their_day(engine)
    env = {"ARCHIVER_DATABASE_URL": database_url, "ARCHIVER_NOW": "2026-11-20T12:00:00Z"}
    ran = cli(["status", "--json"], tmp_path, **env)
    assert ran.returncode == 0, ran.stderr
    attribution = json.loads(ran.stdout)["attribution"]
    assert attribution["account_bytes_out"] == 2000
    assert attribution["streams_bytes_out"] == 600
    assert attribution["unattributed_bytes_out"] == 1400


# --- no timing in property tests --------------------------------------------------------------


def test_property_tests_have_no_deadline() -> None:
    from hypothesis import settings as hypothesis_settings

    assert hypothesis_settings.default is not None
    assert hypothesis_settings.default.deadline is None
