"""The API layer's edges that only e2e tests or nothing guarded: each test kills a mutant that
survived the fast suite (bench/MUTATION.md, the API layer), against httpx.MockTransport fakes."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from archiver.api.client import AnalyticsClient
from archiver.api.clock import VendorClock
from archiver.api.errors import (
    ApiError,
    BadRequestError,
    PermissionDeniedError,
    ResponseFormatError,
    ServerError,
    TransportError,
    UnreachableError,
)
from archiver.api.retry import RetryPolicy, parse_retry_after, retryable
from archiver.datasets import ACCOUNT_SERIES, STREAMS_SERIES
from archiver.timeutil import Resolution
from archiver.vocabulary import ApiRequest
from tests.apifakes import fake_client

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
HOUR = ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1))
STREAMS = ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1), ("cam",))
BUCKET = b'"2026-11-20T10:00:00Z":{"bytesIn":1,"bytesOut":2}'
GOOD = b'{"status":"success","data":{"bandwidth":{' + BUCKET + b"}}}"


def ok(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=GOOD)


# --- coverage.py, clock.py ---------------------------------------------------------------------


def test_a_missing_bucket_is_named_missing() -> None:
    empty = b'{"status":"success","data":{"bandwidth":{}}}'
    client, _ = fake_client(lambda _: httpx.Response(200, content=empty))
    with client, pytest.raises(ResponseFormatError) as info:
        client.fetch(HOUR)
    assert str(info.value).endswith(": 1 requested buckets missing (first 2026-11-20T10:00:00Z)")


def test_a_reading_keeps_when_the_request_was_sent_apart_from_when_it_was_read() -> None:
    times = iter([T0, T0 + timedelta(seconds=3)])  # before the request, after its answer
    client, _ = fake_client(ok, now=lambda: next(times))
    with client:
        reading = client.fetch(HOUR).reading
    assert reading is not None
    assert (reading.sent, reading.host) == (T0, T0 + timedelta(seconds=3))
    # Without `sent`, the reading was sent when it was read.
    alone = VendorClock(lambda: T0).read(None)
    assert (alone.sent, alone.host) == (T0, T0)


# --- retry.py --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),  # "now": no wait, not the exponential backoff
        ("Fri, 20 Nov 2026 14:00:30 +0200", 30.0),  # another zone: read in it, not as UTC
        ("Fri, 20 Nov 2026 12:00:30 -0000", 30.0),  # "zone unknown": taken as UTC
    ],
)
def test_retry_after_edges(value: str, expected: float) -> None:
    assert parse_retry_after(value, datetime(2026, 11, 20, 12, tzinfo=UTC)) == expected


def test_a_retry_after_of_zero_asks_again_at_once() -> None:
    assert RetryPolicy().delay(1, 0.0, lambda: 0.5) == 0.0
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"})])
    slept: list[float] = []
    client, asked = fake_client(lambda r: next(answers, None) or ok(r), sleep=slept.append)
    with client:
        assert client.fetch(HOUR).rows
    assert (len(asked), slept) == (2, [0.0])


# --- translate.py ----------------------------------------------------------------------------


def test_an_error_page_without_json_or_reason_names_its_status() -> None:
    client, _ = fake_client(lambda _: httpx.Response(599, content=b"<html>down</html>"))
    with client, pytest.raises(ServerError) as info:
        client.fetch(HOUR)
    assert str(info.value).endswith("server error 599: HTTP 599")


def test_the_vendors_detailed_words_win_over_its_top_level_message() -> None:
    body = {"status": "fail", "data": {"message": "stopDate is too late"}, "message": "Bad input"}
    client, _ = fake_client(lambda _: httpx.Response(400, json=body))
    with client, pytest.raises(BadRequestError) as info:
        client.fetch(HOUR)
    assert str(info.value).endswith("rejected by the vendor: stopDate is too late")


def test_a_request_cut_by_a_cancel_is_not_worth_retrying() -> None:
    holder: list[AnalyticsClient] = []

    def cut(request: httpx.Request) -> httpx.Response:
        holder[0].cancel()  # the shutdown cuts the request in flight
        raise httpx.ReadError("connection reset", request=request)

    client, asked = fake_client(cut)
    holder.append(client)
    with client, pytest.raises(TransportError, match="cancelled") as info:
        client.fetch(HOUR)
    assert not retryable(info.value)
    assert len(asked) == 1


# --- client.py -------------------------------------------------------------------------------


def test_a_cancelled_client_asks_nothing_more() -> None:
    client, asked = fake_client(ok)
    with client:
        assert not client.cancelled
        client.cancel()
        assert client.cancelled
        with pytest.raises(TransportError, match="cancelled") as info:
            client.fetch(HOUR)
    assert not retryable(info.value)
    assert asked == []


def test_the_default_sleep_waits_on_the_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    # The service's client sleeps on its cancel event, so that a shutdown wakes it at once:
    # the event is one that records how long it was asked to wait (and does not wait).
    waits: list[float | None] = []

    class Recording(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout)
            return self.is_set()

    answers = iter([httpx.Response(503, headers={"Retry-After": "7"})])
    with monkeypatch.context() as patch:
        patch.setattr(threading, "Event", Recording)  # only while the client is built
        client, asked = fake_client(lambda r: next(answers, None) or ok(r), sleep=time.sleep)
    with client:
        assert client.fetch(HOUR).rows
    assert (len(asked), waits) == (2, [7.0])


def test_a_retry_is_logged_with_the_next_attempts_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "7"})])
    client, _ = fake_client(lambda r: next(answers, None) or ok(r))
    with client, caplog.at_level(logging.WARNING, logger="archiver.api.client"):
        client.fetch(HOUR)
    assert "retrying in 7.0s (attempt 2 of 3)" in caplog.text


def test_an_endpoint_that_only_timed_out_keeps_a_403_elsewhere_from_refusing_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The clock probe (account/series) times out: the secret may be good there, so the 403
    # of streams/series refuses that endpoint only, not the secret.
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("account/series"):
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(403, json={"status": "fail", "data": {"message": "no"}})

    client, _ = fake_client(answer)
    with client, caplog.at_level(logging.WARNING, logger="archiver.api.client"):
        client.probe_clock()
        (result,) = list(client.fetch_all([STREAMS]))
    assert isinstance(result.error, PermissionDeniedError)
    assert "could not read the vendor's clock: clock check: timed out" in caplog.text
    assert client.take_readings() == []


def test_after_an_answer_a_refused_connection_is_a_passing_outage() -> None:
    answers = iter([ok])

    def answer(request: httpx.Request) -> httpx.Response:
        served = next(answers, None)
        if served is None:
            raise httpx.ConnectError("refused") from ConnectionRefusedError(111, "refused")
        return served(request)

    client, asked = fake_client(answer)
    with client:
        client.fetch(HOUR)
        with pytest.raises(TransportError) as info:
            client.fetch(HOUR)
    assert not isinstance(info.value, UnreachableError)
    assert len(asked) == 1 + 3  # retried like any outage


# --- transport.py ----------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "two words", "line\nbreak", "caf\u00e9"])
def test_a_token_no_header_can_carry_is_refused(token: str) -> None:
    with pytest.raises(ApiError, match="holds characters an HTTP header cannot carry"):
        fake_client(ok, token=token)


def test_a_token_of_the_first_and_last_printable_characters_is_sent() -> None:
    client, asked = fake_client(ok, token="!secret~")
    with client:
        client.fetch(HOUR)
    assert asked[0].headers["Authorization"] == "Bearer !secret~"
