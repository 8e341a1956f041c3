"""A wrong API URL or token is one line, at once (`run` stops only for the token); a refused
connection after the run's first answer stays a passing outage, retried (issue #25)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient
from archiver.api.errors import TransportError, UnreachableError
from archiver.api.retry import RetryPolicy
from archiver.datasets import ACCOUNT_SERIES
from archiver.service.runner import Service
from archiver.simulator import SimConfig, Simulator
from archiver.timeutil import Resolution
from archiver.vocabulary import ApiRequest
from tests.apifakes import locked_service, run_statuses
from tests.processes import Ran, free_port
from tests.simhelpers import TOKEN

NOW = datetime(2026, 11, 20, 12, 20, tzinfo=UTC)
SECRET = "a-secret-0123456789"
T_DAY = datetime(2026, 11, 19, tzinfo=UTC)
MONTH = ApiRequest(ACCOUNT_SERIES, Resolution.MONTH, datetime(2026, 11, 1, tzinfo=UTC), NOW)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(SimConfig(streams=3, seed=4), token=TOKEN, start=NOW) as sim:
        yield sim


def sync(cli: Callable[..., Ran], cwd: Path, url: str, token: str, discovery: str) -> Ran:
    return cli(
        ["sync"],
        cwd,
        ARCHIVER_API_BASE_URL=url,
        ARCHIVER_API_TOKEN=token,
        ARCHIVER_NOW=NOW.isoformat(),
        ARCHIVER_BACKOFF_BASE_SECONDS="0.001",
        # The run's first request is discovery's, or (without it) the clock check's.
        ARCHIVER_DISCOVERY=discovery,
    )


DISCOVERY = pytest.mark.parametrize("discovery", ["true", "false"], ids=["discovery", "clock"])


@DISCOVERY
def test_a_wrong_token_is_exactly_one_line(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran], discovery: str
) -> None:
    result = sync(cli, tmp_path, simulator.url, "wrong-token-0123456789", discovery)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "the vendor refused the API secret (401 Unauthorized)" in result.stderr
    assert "ARCHIVER_API_TOKEN" in result.stderr
    assert "wrong-token-0123456789" not in result.stderr + result.stdout
    assert simulator.stats_payload()["api_requests"] == 1  # nothing asked after the refusal


@DISCOVERY
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}", "(connection refused)"),
        ("https://no-such-vendor.invalid", "(the name 'no-such-vendor.invalid' does not resolve)"),
    ],
    ids=["refused", "unresolved"],
)
def test_no_server_at_the_url_is_one_line_naming_the_setting(
    tmp_path: Path, cli: Callable[..., Ran], url: str, reason: str, discovery: str
) -> None:
    url = url.format(port=free_port())  # a port nothing listens on
    result = sync(cli, tmp_path, url, SECRET, discovery)
    assert result.returncode == 1
    # One line: no retry (each would log a line), no cycle of failed requests after it.
    assert result.stderr == (
        f"archiver: error: cannot reach the vendor API at {url} {reason}: "
        "check ARCHIVER_API_BASE_URL\n"
    )
    assert SECRET not in result.stdout


def test_a_name_that_does_not_resolve_is_told_from_the_exception_chain() -> None:
    def unresolved(request: httpx.Request) -> httpx.Response:
        cause = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        raise httpx.ConnectError("[Errno -2] Name or service not known") from cause

    slept: list[float] = []
    client = AnalyticsClient(
        base_url="https://user:pw@vendor.example",
        token=SECRET,
        transport=httpx.MockTransport(unresolved),
        sleep=slept.append,
    )
    with client, pytest.raises(UnreachableError) as info:
        client.fetch(MONTH)
    assert str(info.value) == (
        "cannot reach the vendor API at https://vendor.example (the name 'vendor.example' does "
        "not resolve): check ARCHIVER_API_BASE_URL"
    )
    assert slept == []


def test_after_an_answer_a_refused_connection_is_retried(simulator: Simulator) -> None:
    reached = threading.Event()  # one run: what the service shares across its cycles
    slept: list[float] = []
    url = simulator.url

    def client() -> AnalyticsClient:
        return AnalyticsClient(
            base_url=url,
            token=TOKEN,
            retry=RetryPolicy(max_attempts=3),
            sleep=slept.append,
            reached=reached,
        )

    with client() as first:
        assert first.fetch(MONTH).error is None
    simulator.stop()  # the port now refuses connections
    with client() as second, pytest.raises(TransportError) as info:
        second.fetch(MONTH)
    assert not isinstance(info.value, UnreachableError)
    assert "Connection refused" in str(info.value)
    assert len(slept) == 2
    with (
        AnalyticsClient(base_url=url, token=TOKEN) as other,
        pytest.raises(UnreachableError),
    ):
        other.fetch(MONTH)  # another run: never answered yet


def service(engine: Engine, url: str) -> Service:
    return locked_service(engine, url, NOW)


def test_the_service_fails_the_cycle_but_runs_on_when_its_first_request_finds_no_server(
    engine: Engine,
) -> None:
    # A long-running service never exits for it (the next cycle asks again):
    # tests/test_outages_and_refusals.py.
    run = service(engine, f"http://127.0.0.1:{free_port()}")
    try:
        run.cycle()
    finally:
        run.lock.release()
    assert run.fatal is None
    assert not run.stop.is_set()
    assert run_statuses(engine) == ["failed"]


def test_the_service_rides_out_a_refused_connection_after_its_first_answer(
    engine: Engine, simulator: Simulator
) -> None:
    run = service(engine, simulator.url)
    try:
        run.cycle()
        simulator.stop()
        simulator.set_now(NOW + timedelta(minutes=15))
        run.cycle()
    finally:
        run.lock.release()
    assert run.fatal is None
    assert not run.stop.is_set()
    assert run_statuses(engine) == ["ok", "partial"]


def test_no_server_at_the_url_stops_every_request_of_the_run() -> None:
    # Whichever request comes first: the cycle's requests too, not only discovery's.
    slept: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"
    with (
        AnalyticsClient(base_url=url, token=SECRET, sleep=slept.append) as client,
        pytest.raises(UnreachableError),
    ):
        list(client.fetch_all([MONTH, ApiRequest(ACCOUNT_SERIES, Resolution.DAY, T_DAY, NOW)]))
    assert slept == []
