"""The connection's bookkeeping without sockets: what each answer counts, the rate slot, the
deadline's timer, which CA bundle is trusted. Each test kills a mutant the fast suite missed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from archiver.api import transport
from archiver.api.errors import ApiError
from archiver.api.transport import RateLimiter
from archiver.datasets import ACCOUNT_SERIES
from archiver.timeutil import Resolution
from archiver.vocabulary import ApiRequest
from tests.apifakes import fake_client

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
HOUR = ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1))
GOOD = (
    b'{"status":"success","data":{"bandwidth":{"2026-11-20T10:00:00Z":{"bytesIn":1,"bytesOut":2}}}}'
)


def _counted(answer: Any) -> list[tuple[str, str]]:
    """What `on_response` was told for one fetch of HOUR answered by `answer`."""
    counted: list[tuple[str, str]] = []
    client, _ = fake_client(answer, on_response=lambda path, status: counted.append((path, status)))
    with client, contextlib.suppress(ApiError):
        client.fetch(HOUR)
    return counted


def test_every_answer_and_every_failure_is_counted_by_its_kind() -> None:
    path = "analytics/account/series"
    assert _counted(lambda _: httpx.Response(200, content=GOOD)) == [(path, "200")]
    assert _counted(lambda _: httpx.Response(400)) == [(path, "400")]

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=request)

    assert _counted(timeout) == [(path, "timeout")] * 3  # each attempt
    assert _counted(reset) == [(path, "transport_error")] * 3
    gzip = {"Content-Encoding": "gzip"}  # plain JSON labelled gzip
    undecodable = _counted(
        lambda _: httpx.Response(200, headers=gzip, stream=httpx.ByteStream(GOOD))
    )
    assert undecodable == [(path, "decode_error")]


def test_each_request_waits_for_its_rate_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    class Frozen(RateLimiter):  # the connection's limiter, on a clock that never moves
        def __init__(self, rate: float) -> None:
            super().__init__(rate, clock=lambda: 100.0, sleep=slept.append)

    monkeypatch.setattr(transport, "RateLimiter", Frozen)
    client, _ = fake_client(lambda _: httpx.Response(200, content=GOOD), max_requests_per_second=4)
    with client:
        for _ in range(3):
            client.fetch(HOUR)
    assert slept == [0.25, 0.5]


@pytest.fixture
def timers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[threading.Timer]]:
    """Every deadline timer the transport starts meanwhile."""
    started: list[threading.Timer] = []

    class Kept(threading.Timer):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr("archiver.api.transport.threading.Timer", Kept)
    yield started
    for timer in started:
        timer.cancel()


def test_the_deadline_timer_ends_with_its_request(timers: list[threading.Timer]) -> None:
    # A timer left running would, at its deadline, cut the socket a later request reuses;
    # one per request would pile up threads; and none may keep the process from exiting.
    client, _ = fake_client(lambda _: httpx.Response(200, content=GOOD), deadline_seconds=3600)
    with client:
        client.fetch(HOUR)
        client.fetch(HOUR)
    assert len(timers) == 2
    assert all(timer.daemon for timer in timers)
    assert all(timer.finished.is_set() for timer in timers)  # cancelled, never fired


@pytest.mark.parametrize(
    ("base_url", "trusted"),
    [("https://api.millicast.com", True), ("http://127.0.0.1:8080", False)],
)
def test_the_environments_ca_bundle_is_trusted_only_for_a_remote_vendor(
    monkeypatch: pytest.MonkeyPatch, base_url: str, trusted: bool
) -> None:
    asked: list[bool] = []
    real = httpx.create_ssl_context

    def recording(*, trust_env: bool) -> Any:
        asked.append(trust_env)
        return real(trust_env=trust_env)

    monkeypatch.setattr(httpx, "create_ssl_context", recording)
    transport._load_tls_context.cache_clear()  # loaded afresh, through the recorder
    try:
        client, _ = fake_client(lambda _: httpx.Response(200), base_url=base_url)
        client.close()
    finally:
        transport._load_tls_context.cache_clear()
    assert asked == [trusted]
