"""The API client against httpx.MockTransport: exact requests, parsing, retries, errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from archiver.api.client import AnalyticsClient
from archiver.api.errors import (
    AuthenticationError,
    BadRequestError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from archiver.api.retry import RetryPolicy
from archiver.api.transport import RateLimiter
from archiver.datasets import ACCOUNT_GEO_SERIES, ACCOUNT_SERIES, STREAMS_GEO_SERIES, STREAMS_SERIES
from archiver.errors import RefusedStreamNameError
from archiver.observability import SecretFilter
from archiver.timeutil import Resolution, buckets, format_iso, parse_instant
from archiver.vocabulary import ApiRequest, batches
from tests.conftest import VENDOR

TOKEN = "s3cr3t-token-value-XYZ"
T0 = datetime(2020, 3, 1, tzinfo=UTC)
T1 = datetime(2020, 3, 3, tzinfo=UTC)
NOW = datetime(2020, 3, 5, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A fake vendor: answers from a function and records every request."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def client(self, **options: object) -> AnalyticsClient:
        defaults: dict[str, object] = {
            "base_url": "https://api.millicast.com",
            "token": TOKEN,
            "transport": httpx.MockTransport(self),
            "sleep": self.sleeps.append,
            "now": lambda: NOW,
            "rng": lambda: 0.5,
            "max_requests_per_second": 1000.0,
            "concurrency": 1,
        }
        defaults.update(options)
        return AnalyticsClient(**defaults)  # type: ignore[arg-type]


def success(data: object) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": data})


def zeros(request: httpx.Request) -> httpx.Response:
    """A well-formed account/series answer: every asked bucket, zero-filled."""
    params = request.url.params
    resolution = Resolution.parse(params["resolution"])
    start = parse_instant(params["startDate"])
    stop = parse_instant(params["stopDate"])
    empty = {format_iso(t): {"bytesIn": 0, "bytesOut": 0} for t in buckets(start, stop, resolution)}
    return success({"bandwidth": empty})


def sample(name: str) -> dict[str, object]:
    path = VENDOR / "samples" / name
    assert path.is_file(), f"vendor sample missing: {path}"
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def test_requests_batch_25_names_into_10_10_5_with_repeated_keys() -> None:
    names = [f"cam {i:02d}" for i in range(25)]
    fake = Recorder(lambda r: success({}))
    requests = [
        ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, T1, batch) for batch in batches(names)
    ]
    with fake.client() as client:
        results = list(client.fetch_all(requests))
    assert [r.error for r in results] == [None, None, None]
    assert [r.url.path for r in fake.requests] == ["/api/analytics/streams/series"] * 3
    seen = [r.url.params.get_list("streamNames") for r in fake.requests]
    assert [len(s) for s in seen] == [10, 10, 5]
    assert [n for s in seen for n in s] == names
    first = fake.requests[0]
    assert first.url.params["startDate"] == "2020-03-01T00:00:00Z"
    assert first.url.params["stopDate"] == "2020-03-03T00:00:00Z"
    assert first.url.params["resolution"] == "Hour"
    assert "streamNames=cam+00&streamNames=cam+01" in str(first.url)
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"


def test_day_and_month_dates_have_no_time_part() -> None:
    fake = Recorder(zeros)
    with fake.client() as client:
        client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.DAY, T0, T1))
        client.fetch(
            ApiRequest(ACCOUNT_SERIES, Resolution.MONTH, T0, datetime(2020, 4, 1, tzinfo=UTC))
        )
    assert [(r.url.params["startDate"], r.url.params["stopDate"]) for r in fake.requests] == [
        ("2020-03-01", "2020-03-03"),
        ("2020-03-01", "2020-04-01"),
    ]


@pytest.mark.parametrize("name", ["a/b", "wild*", "a--b", "x" * 129, ""])
def test_names_the_vendor_cannot_report_are_refused_before_any_request(name: str) -> None:
    with pytest.raises(RefusedStreamNameError, match="refused"):
        ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, T1, (name,))


def test_resolution_the_endpoint_does_not_take_is_refused() -> None:
    with pytest.raises(ValueError, match="does not take resolution Month"):
        ApiRequest(STREAMS_GEO_SERIES, Resolution.MONTH, T0, T1, ("a",))


@pytest.mark.parametrize(
    ("name", "resolution", "start", "stop"),
    [
        ("spec_account_series_hour.json", Resolution.HOUR, T0, T0 + timedelta(hours=2)),
        ("spec_account_series_day.json", Resolution.DAY, T0, T1),
        (
            "spec_account_series_month.json",
            Resolution.MONTH,
            datetime(2020, 1, 1, tzinfo=UTC),
            T0,
        ),
    ],
)
def test_account_series_samples(
    name: str, resolution: Resolution, start: datetime, stop: datetime
) -> None:
    body = sample(name)
    fake = Recorder(lambda r: httpx.Response(200, json=body))
    with fake.client() as client:
        result = client.fetch(ApiRequest(ACCOUNT_SERIES, resolution, start, stop))
    rows = sorted(result.rows, key=lambda r: r["period_start"])
    assert len(rows) == 2
    first, second = rows
    assert first["resolution"] == resolution.value
    assert (first["bytes_out"], first["bytes_in"]) == (20150, 5000)
    assert (first["standard_bytes_out"], first["standard_bytes_in"]) == (10000, 5000)
    assert (first["restream_bytes_out"], first["restream_seconds"]) == (150, 10)
    assert (first["cascade_bytes_out"], first["cascade_bytes_in"]) == (10000, 0)
    assert (second["bytes_out"], second["restream_seconds"]) == (400, 12)


def test_streams_series_sample() -> None:
    body = sample("spec_streams_series_hour.json")
    fake = Recorder(lambda r: httpx.Response(200, json=body))
    with fake.client() as client:
        rows = client.fetch(
            ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=2), ("mystream",))
        ).rows
    by_hour = {r["period_start"].hour: r for r in rows}
    assert by_hour[1]["stream_name"] == "mystream"
    assert (by_hour[1]["bytes_out"], by_hour[1]["bytes_in"]) == (1300, 300)
    assert by_hour[1]["restream_seconds"] == 30
    assert by_hour[0]["cascade_bytes_out"] == 100


def test_live_sample_with_lower_case_resolution_echo_and_zero_buckets() -> None:
    recorded = sample("live_streams_series_day.json")
    assert "resolution=day" in str(recorded["request"])
    fake = Recorder(lambda r: httpx.Response(200, json=recorded["response"]))
    start, stop = datetime(2023, 11, 1, tzinfo=UTC), datetime(2023, 11, 30, tzinfo=UTC)
    with fake.client() as client:
        rows = client.fetch(
            ApiRequest(STREAMS_SERIES, Resolution.DAY, start, stop, ("millidash",))
        ).rows
    # Zero-filled days produce no row; the four days with traffic do, without breakdowns.
    assert [(r["period_start"].day, r["bytes_in"], r["bytes_out"]) for r in rows] == [
        (12, 409420607, 290165886),
        (13, 19801361, 9650574),
        (14, 133279419, 3511592),
        (15, 6622559, 0),
    ]
    assert rows[0]["standard_bytes_in"] is None


def test_the_spec_geo_examples_lacking_the_schema_durations_are_refused() -> None:
    # The spec's examples carry `duration`; the schemas (and the live service) have
    # `publishDuration` and `viewDuration`. A missing metric is never stored as 0.
    account = sample("spec_account_geo_series_simple.json")
    streams = sample("spec_streams_geo_series_simple.json")
    answers = iter([account, streams])
    fake = Recorder(lambda r: httpx.Response(200, json=next(answers)))
    stop = T0 + timedelta(hours=2)
    with fake.client() as client:
        with pytest.raises(ResponseFormatError, match="publishDuration: Field required"):
            client.fetch(ApiRequest(ACCOUNT_GEO_SERIES, Resolution.HOUR, T0, stop))
        per = client.fetch(ApiRequest(STREAMS_GEO_SERIES, Resolution.HOUR, T0, stop, ("mystream",)))
    assert per.rows == []
    assert "publishDuration: Field required" in per.failed["mystream"]


def test_geo_with_both_durations_empty_buckets_and_numeric_names() -> None:
    data = {
        "geo": {
            "360": {
                "2020-03-01T00:00:00Z": {},
                "2020-03-01T01:00:00Z": {
                    "FR": {
                        "publishes": 1,
                        "views": 3,
                        "publishDuration": 60,
                        "viewDuration": 170,
                        "bytesOut": 9,
                        "bytesIn": 8,
                        "newField": 1,
                    },
                },
            }
        }
    }
    fake = Recorder(lambda r: success(data))
    with fake.client() as client:
        rows = client.fetch(
            ApiRequest(STREAMS_GEO_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=2), ("360",))
        ).rows
    assert rows == [
        {
            "resolution": "Hour",
            "period_start": datetime(2020, 3, 1, 1, tzinfo=UTC),
            "country": "FR",
            "publishes": 1,
            "views": 3,
            "publish_seconds": 60,
            "view_seconds": 170,
            "bytes_in": 8,
            "bytes_out": 9,
            "stream_name": "360",
        }
    ]


def test_buckets_outside_the_window_fail_the_stream_and_unasked_streams_are_strangers() -> None:
    hours = {
        "2020-03-01T00:00:00Z": {"bytesIn": 2, "bytesOut": 2},
        "2020-03-01T01:00:00Z": {"bytesIn": 0, "bytesOut": 0},
    }
    stop = T0 + timedelta(hours=2)
    data = {
        "good": {"bandwidth": hours},
        "extra": {"bandwidth": {**hours, "2020-03-01T02:00:00Z": {"bytesIn": 3, "bytesOut": 3}}},
    }
    fake = Recorder(lambda r: success(data))
    with fake.client() as client:
        result = client.fetch(
            ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, stop, ("good", "extra", "absent"))
        )
        assert [(r["stream_name"], r["bytes_in"]) for r in result.rows] == [("good", 2)]
        assert "1 buckets not requested" in result.failed["extra"]
        assert "missing from the response" in result.failed["absent"]
        # A stream not asked for costs only itself (tests/test_smallest_unit.py).
        alone = client.fetch(ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, stop, ("good",)))
        assert [(r["stream_name"], r["bytes_in"]) for r in alone.rows] == [("good", 2)]
        assert alone.failed == {}
        assert alone.strangers == ["extra"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"status":"success","data":{"bandwidth":{"2020-03-01T00:00:00Z":'
            b'{"bytesIn":"1","bytesOut":1}}}}',
            "data.bandwidth.2020-03-01T00:00:00Z.bytesIn",
        ),
        (
            b'{"status":"success","data":{"bandwidth":{"yesterday":{"bytesIn":0,"bytesOut":0}}}}',
            "'yesterday'",
        ),
        (
            b'{"status":"success","data":{"bandwidth":{"2020-03-01T00:30:00Z":'
            b'{"bytesIn":0,"bytesOut":0}}}}',
            "not the start of a Hour bucket",
        ),
        (b'{"status":"weird","data":{}}', "unexpected envelope at status"),
        (b"[1,2]", "unexpected envelope"),
    ],
)
def test_bodies_that_do_not_match_name_endpoint_and_part(body: bytes, expected: str) -> None:
    fake = Recorder(lambda r: httpx.Response(200, content=body))
    with fake.client() as client, pytest.raises(ResponseFormatError) as info:
        client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1))
    assert expected in str(info.value)
    assert str(info.value).startswith("account/series Hour 2020-03-01T00:00:00Z")
    assert len(fake.requests) == 1


def test_a_truncated_body_is_retried_then_reported() -> None:
    fake = Recorder(lambda r: httpx.Response(200, content=b'{"status":"success","data":{"ban'))
    with (
        fake.client(retry=RetryPolicy(max_attempts=3)) as client,
        pytest.raises(ResponseFormatError, match="not complete JSON"),
    ):
        client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1))
    assert len(fake.requests) == 3


def test_503_then_200_succeeds() -> None:
    answers = iter([httpx.Response(503, json={"status": "error", "message": "busy"}), None])
    fake = Recorder(lambda r: next(answers) or zeros(r))
    with fake.client() as client:
        result = client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1))
    assert result.rows == []
    assert len(fake.requests) == 2
    assert fake.sleeps == [0.5]  # base 0.5 s, jitter factor 1.0 with rng 0.5


def test_429_with_retry_after_waits_that_long() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "2"}), None])
    fake = Recorder(lambda r: next(answers) or zeros(r))
    with fake.client() as client:
        client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1))
    assert fake.sleeps == [2.0]


def test_retry_after_is_capped() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "3600"}), None])
    fake = Recorder(lambda r: next(answers) or zeros(r))
    with fake.client(retry=RetryPolicy(max_backoff=30.0)) as client:
        client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1))
    assert fake.sleeps == [30.0]


def test_permanent_500_fails_after_the_configured_attempts() -> None:
    fake = Recorder(
        lambda r: httpx.Response(500, json={"status": "error", "message": "boom", "code": 500})
    )
    with (
        fake.client(retry=RetryPolicy(max_attempts=4, backoff_base=1.0)) as client,
        pytest.raises(ServerError, match="server error 500: boom"),
    ):
        client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1))
    assert len(fake.requests) == 4
    assert fake.sleeps == [1.0, 2.0, 4.0]


def test_connection_errors_are_retried_then_reported() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake = Recorder(refuse)
    with (
        fake.client(retry=RetryPolicy(max_attempts=2)) as client,
        pytest.raises(TransportError, match="ConnectError"),
    ):
        client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1))
    assert len(fake.requests) == 2


def test_400_gives_the_vendor_message_without_retry() -> None:
    body = {
        "status": "fail",
        "data": {"message": "Validation errors", "errors": {"streamNames": ["At most 10 names"]}},
    }
    fake = Recorder(lambda r: httpx.Response(400, json=body))
    with fake.client() as client, pytest.raises(BadRequestError) as info:
        client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1))
    assert "Validation errors - streamNames: At most 10 names" in str(info.value)
    assert len(fake.requests) == 1


def test_401_names_the_token_setting_and_stops_fetch_all() -> None:
    fake = Recorder(
        lambda r: httpx.Response(401, json={"status": "fail", "data": {"message": "Unauthorized"}})
    )
    requests = [ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1)] * 3
    with fake.client() as client, pytest.raises(AuthenticationError) as info:
        list(client.fetch_all(requests))
    assert "ARCHIVER_API_TOKEN" in str(info.value)
    assert "Unauthorized" in str(info.value)


def test_failures_come_back_as_results_and_the_rest_go_on() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["resolution"] == "Day":
            return httpx.Response(502)
        return zeros(request)

    fake = Recorder(answer)
    requests = [
        ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1),
        ApiRequest(ACCOUNT_SERIES, Resolution.DAY, T0, T1),
        ApiRequest(ACCOUNT_SERIES, Resolution.MONTH, T0, datetime(2020, 4, 1, tzinfo=UTC)),
    ]
    with fake.client(retry=RetryPolicy(max_attempts=2), concurrency=2) as client:
        results = {r.request.resolution: r for r in client.fetch_all(requests)}
    assert results[Resolution.HOUR].error is None
    assert isinstance(results[Resolution.DAY].error, ServerError)
    assert results[Resolution.MONTH].error is None


def test_plain_http_only_to_loopback() -> None:
    fake = Recorder(lambda r: success({}))
    with pytest.raises(Exception, match="plain http"):
        fake.client(base_url="http://api.example.com")
    fake.client(base_url="http://127.0.0.1:9").close()


def test_discovery_walks_every_page() -> None:
    listing = sample("spec_monitoring_streams_list.json")

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        if page == 1:
            return httpx.Response(200, json=listing)
        return success({"pagination": None, "data": []})

    fake = Recorder(answer)
    with fake.client() as client:
        names = list(client.discover_streams(page_size=2))
    assert names == ["restream_feed_1", "main_stream"]
    assert [r.url.params["page"] for r in fake.requests] == ["1"]


def test_rate_limiter_spaces_calls() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = RateLimiter(4.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire()
    assert slept == [0.25, 0.5]


def test_the_token_never_reaches_logs_errors_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    def leak(request: httpx.Request) -> httpx.Response:
        # A hostile server echoing the secret back in its error body.
        return httpx.Response(500, json={"status": "error", "message": f"bad {TOKEN}"})

    fake = Recorder(leak)
    caplog.handler.addFilter(SecretFilter([TOKEN]))
    caplog.set_level(logging.DEBUG)
    with fake.client(retry=RetryPolicy(max_attempts=3)) as client:
        assert TOKEN not in repr(client)
        with pytest.raises(ServerError) as info:
            client.fetch(ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T1))
        logging.getLogger("archiver").exception("cycle failed: %s", info.value)
    assert caplog.records, "the failing run logged nothing"
    assert TOKEN not in caplog.text
    assert "[redacted]" in caplog.text


def test_the_ca_bundle_is_loaded_once_and_again_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import certifi

    from archiver.api import transport

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    first = transport._tls_context(True)
    assert transport._tls_context(True) is first
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    second = transport._tls_context(True)
    assert second is not first
    assert transport._tls_context(True) is second
    later = bundle.stat().st_mtime_ns + 10**9
    os.utime(bundle, ns=(later, later))  # the operator rotated the bundle
    assert transport._tls_context(True) is not second
