"""`run` outlives an unreachable vendor and a 403
everywhere, a 403 after a 200 is not a refused secret, an error status keeps its meaning
when its body does not decode, strangers are one line per answer, the URL in messages is bare."""

from __future__ import annotations

import itertools
import logging
import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient, FetchResult
from archiver.api.errors import AuthenticationError, PermissionDeniedError, UnreachableError
from archiver.cycle.answer import store_answer
from archiver.cycle.report import CycleReport
from archiver.rules.plan import Policy
from archiver.service.runner import Service
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.server import Faults
from archiver.timeutil import Resolution
from archiver.vocabulary import (
    ACCOUNT_GEO_SERIES,
    ACCOUNT_SERIES,
    STREAMS_SERIES,
    ApiRequest,
    RunKind,
)
from tests.apifakes import fake_client, locked_service, run_statuses
from tests.processes import free_port
from tests.simhelpers import TOKEN

NOW = datetime(2026, 11, 20, 12, 20, tzinfo=UTC)
T0 = datetime(2020, 3, 1, tzinfo=UTC)
GOOD = (
    b'{"status":"success","data":{"bandwidth":{"2020-03-01T00:00:00Z":{"bytesIn":1,"bytesOut":2}}}}'
)
FORBIDDEN = {"status": "fail", "data": {"message": "Forbidden"}}


def hour(endpoint: object = ACCOUNT_SERIES, offset: int = 0) -> ApiRequest:
    start = T0 + timedelta(hours=offset)
    return ApiRequest(endpoint, Resolution.HOUR, start, start + timedelta(hours=1))  # type: ignore[arg-type]


def service(engine: Engine, url: str, token: str = TOKEN) -> Service:
    return locked_service(engine, url, NOW, token)


def failed_cycles(run: Service) -> float:
    value: float = run.metrics.cycles.labels(status="failed")._value.get()
    return value


# --- 1. `run` never exits for an unreachable vendor -----------------------------------------


def test_the_service_outlives_no_server_at_its_url_and_the_next_cycle_retries(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}"
    run = service(engine, url)
    try:
        with caplog.at_level(logging.WARNING):
            run.cycle()
        assert run.fatal is None
        assert not run.stop.is_set()
        assert run_statuses(engine) == ["failed"]
        assert failed_cycles(run) == 1
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "ARCHIVER_API_BASE_URL" in errors[0]
        assert url in errors[0]
        with Simulator(SimConfig(streams=3, seed=4), token=TOKEN, start=NOW, port=port):
            run.cycle()  # the vendor is there now
    finally:
        run.lock.release()
    assert run.fatal is None
    assert not run.stop.is_set()
    assert run_statuses(engine) == ["failed", "ok"]


def test_a_wrong_secret_still_stops_the_service(engine: Engine) -> None:
    with Simulator(SimConfig(streams=3, seed=4), token=TOKEN, start=NOW) as sim:
        run = service(engine, sim.url, token="wrong-token-0123456789")
        try:
            run.cycle()
        finally:
            run.lock.release()
    assert run.fatal is not None
    assert "ARCHIVER_API_TOKEN" in run.fatal
    assert run.stop.is_set()


def test_a_temporary_name_resolution_failure_is_retried_not_a_wrong_url() -> None:
    calls = itertools.count()

    def answer(request: httpx.Request) -> httpx.Response:
        if next(calls) == 0:
            cause = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution") from cause
        return httpx.Response(200, content=GOOD)

    client, asked = fake_client(answer, concurrency=1)
    with client:
        result = client.fetch(hour())  # the run's first request
    assert result.rows
    assert len(asked) == 2  # retried like any transport error


def test_the_unreachable_message_shows_no_userinfo_query_or_fragment() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused") from ConnectionRefusedError(111, "refused")

    client = AnalyticsClient(
        base_url="https://user:pw@vendor.example/base?key=s3cr3t#frag-s3cr3t",
        token=TOKEN,
        transport=httpx.MockTransport(refused),
        sleep=lambda _: None,
    )
    with client, pytest.raises(UnreachableError) as info:
        client.fetch(hour())
    message = str(info.value)
    assert "s3cr3t" not in message
    assert "pw" not in message
    assert "cannot reach the vendor API at https://vendor.example/base" in message


# --- 2. a 403 refuses an endpoint only while it is all the endpoint answered ------------------


def test_a_403_after_a_200_on_the_same_path_fails_only_that_request() -> None:
    calls = itertools.count()

    def answer(request: httpx.Request) -> httpx.Response:
        if next(calls) == 1:
            return httpx.Response(403, json=FORBIDDEN)
        return httpx.Response(200, content=GOOD)

    client, _ = fake_client(answer, concurrency=1)
    requests = [hour()] * 4  # one path, asked four times
    with client:
        results = list(client.fetch_all(requests))  # no refused secret raised
        assert client.access.refused_everywhere() is None
    errors = [r.error for r in results if r.error is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], PermissionDeniedError)
    assert sum(1 for r in results if r.rows) == 3


def test_no_listing_permission_and_a_stray_403_per_data_path_is_not_a_refused_secret() -> None:
    seen: dict[str, int] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        seen[path] = seen.get(path, 0) + 1
        if "monitoring" in path or "publish_token" in path or seen[path] == 2:
            return httpx.Response(403, json=FORBIDDEN)  # no permission; a stray one (a WAF)
        return httpx.Response(200, content=GOOD)

    client, _ = fake_client(answer, concurrency=1)
    requests = [
        hour(endpoint, i) for i in range(3) for endpoint in (ACCOUNT_SERIES, ACCOUNT_GEO_SERIES)
    ]
    with client:
        with pytest.raises(PermissionDeniedError):
            list(client.discover_streams())
        with pytest.raises(PermissionDeniedError):
            client.publish_tokens()
        results = list(client.fetch_all(requests))
        assert client.access.refused_everywhere() is None
    assert sum(1 for r in results if isinstance(r.error, PermissionDeniedError)) == 2


def test_the_service_outlives_a_403_everywhere_and_asks_again(engine: Engine) -> None:
    # GraphQL too: a secret that reads the feeds is not refused everywhere.
    everything = ("analytics/account/series", "account/geo_series", "streams/series", "graphql")
    with Simulator(
        SimConfig(streams=3, seed=4), token=TOKEN, start=NOW, faults=Faults(forbidden=everything)
    ) as sim:
        run = service(engine, sim.url)
        try:
            run.cycle()
            assert run.fatal is None
            assert not run.stop.is_set()
            assert run_statuses(engine) == ["failed"]
            sim.faults = Faults()
            run.cycle()
        finally:
            run.lock.release()
    assert run.fatal is None
    assert not run.stop.is_set()
    assert run_statuses(engine) == ["failed", "ok"]


# --- 3. an error status keeps its meaning when its body does not decode -----------------------


@pytest.mark.parametrize("status", [503, 429, 502])
def test_a_retryable_status_with_an_undecodable_body_is_retried(status: int) -> None:
    calls = itertools.count()

    def answer(request: httpx.Request) -> httpx.Response:
        if next(calls) == 0:
            headers = {"Content-Encoding": "gzip", "Retry-After": "0"}
            body = httpx.ByteStream(b"<html>Service Unavailable</html>")
            return httpx.Response(status, headers=headers, stream=body)
        return httpx.Response(200, content=GOOD)

    client, asked = fake_client(answer, concurrency=1)
    with client:
        (result,) = list(client.fetch_all([hour()]))
    assert result.error is None
    assert result.rows
    assert len(asked) == 2


def test_a_401_with_an_undecodable_body_is_a_refused_secret() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = httpx.ByteStream(b"<html>Unauthorized</html>")
        return httpx.Response(401, headers={"Content-Encoding": "gzip"}, stream=body)

    client, asked = fake_client(answer, concurrency=1)
    with client, pytest.raises(AuthenticationError) as info:
        list(client.fetch_all([hour(), hour(offset=1)]))
    assert "refused the API secret (401" in str(info.value)
    assert len(asked) == 1


# --- 4. strangers: one line per answer -------------------------------------------------------


def test_many_strangers_in_one_answer_are_one_error_line(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    request = ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1), ("a",))
    strangers = [f"s{i}" for i in range(2000)]
    result = FetchResult(request, [], NOW, strangers=strangers)
    report = CycleReport(kind=RunKind.SYNC, now=NOW)
    with caplog.at_level(logging.ERROR):
        store_answer(engine=engine, result=result, scopes=(), policy=Policy(), report=report)
    assert len(report.errors) == 1
    (line,) = report.errors
    assert "2000 streams that were not asked for" in line
    assert "'s0', 's1', 's2', 's3', 's4' and 1995 more" in line
    assert "'s5'" not in line
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [line]
