"""What the client retries is decided in one place (`retryable`), apart from how long it waits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from archiver.api.errors import (
    ApiError,
    ApiStatusError,
    AuthenticationError,
    BadRequestError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from archiver.api.retry import parse_retry_after, retryable
from archiver.datasets import ACCOUNT_SERIES
from archiver.timeutil import Resolution
from archiver.vocabulary import ApiRequest
from tests.test_api_client import NOW, Recorder, success, zeros

HOUR = datetime(2020, 3, 4, 10, tzinfo=UTC)
REQUEST = ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, HOUR, HOUR + timedelta(hours=1))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TransportError("timed out"), True),
        (TransportError("past the overall deadline", transient=False), False),
        (RateLimitedError("429", status_code=429), True),
        (ServerError("503", status_code=503), True),
        (ResponseFormatError("cut short", truncated=True), True),
        (ResponseFormatError("wrong shape"), False),
        (BadRequestError("400", status_code=400), False),
        (AuthenticationError("401", status_code=401), False),
        (ApiStatusError("404", status_code=404), False),
        (ApiError("plain http refused"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, ApiError) else str(value),
)
def test_retryable(error: ApiError, expected: bool) -> None:
    assert retryable(error) is expected


def test_an_answer_past_the_overall_deadline_is_not_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The rest of the answer comes once the deadline's timer has fired, however late the
    # machine runs it (no socket here for the deadline to cut).
    fired = threading.Event()

    class Telling(threading.Timer):
        def run(self) -> None:
            super().run()
            fired.set()

    # The transport's own `threading.Timer`, for this test only.
    monkeypatch.setattr("archiver.api.transport.threading.Timer", Telling)

    def drip() -> Iterator[bytes]:
        yield b'{"status": "success", '
        assert fired.wait(60), "the deadline never fired"
        yield b'"data": {}}'

    recorder = Recorder(lambda request: httpx.Response(200, content=drip()))
    deadline = pytest.raises(TransportError, match="ARCHIVER_REQUEST_DEADLINE_SECONDS")
    with recorder.client(deadline_seconds=0.1) as client, deadline:
        client.fetch(REQUEST)
    assert len(recorder.requests) == 1
    assert recorder.sleeps == []


def test_a_server_error_is_asked_again_until_the_attempts_run_out() -> None:
    answers = iter([httpx.Response(503), httpx.Response(503)])
    recorder = Recorder(lambda request: next(answers, None) or success({"bandwidth": {}}))
    # The third answer is a success that lacks the hour asked for: not asked again.
    with recorder.client() as client, pytest.raises(ResponseFormatError):
        client.fetch(REQUEST)
    assert len(recorder.requests) == 3
    assert len(recorder.sleeps) == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("Fri, 20 Nov 2026 12:00:30 GMT", 30.0),  # a date: seconds from the given now
        ("Fri, 20 Nov 2026 11:59:00 GMT", None),  # already past: the backoff applies
        ("nan", None),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_read_against_the_given_now(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, datetime(2026, 11, 20, 12, tzinfo=UTC)) == expected


def test_the_client_reads_a_dated_retry_after_on_its_own_clock() -> None:
    when = NOW + timedelta(seconds=12)
    dated = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    answers = iter([httpx.Response(429, headers={"Retry-After": dated})])
    fake = Recorder(lambda r: next(answers, None) or zeros(r))
    with fake.client() as client:
        client.fetch(REQUEST)
    assert fake.sleeps == [12.0]
