"""The overall deadline cuts the request's own socket, new or reused, whenever it fires.

The read timeout is far away (300 s): only the deadline's cut can end these requests. The
deadline's timer fires when the test says (an event), not after seconds, so each test puts
the cut at one exact point of the request. Loopback sockets: the point is the socket.
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from archiver.api.client import AnalyticsClient
from archiver.api.errors import ApiError, TransportError
from archiver.api.retry import RetryPolicy
from archiver.datasets import ACCOUNT_SERIES
from archiver.timeutil import Resolution
from archiver.vocabulary import ApiRequest
from tests.simhelpers import TOKEN
from tests.test_hostile import raw_server

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
HOUR = ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1))
HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
GENEROUS = 60  # seconds: only a hang waits this long


class Deadline:
    """The transport's deadline timers: a timer started while `when` is None never fires (it
    ends with its request); one started after `when` is set fires once that event is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.when: threading.Event | None = None
        self.fired = threading.Event()
        deadline = self

        class Timer(threading.Timer):
            def __init__(self, interval: float, function: Any) -> None:
                super().__init__(interval, function)
                self.when = deadline.when

            def run(self) -> None:
                if self.when is None:
                    self.finished.wait()  # cancelled when its request ends
                    return
                if self.when.wait(GENEROUS) and not self.finished.is_set():
                    self.function()
                deadline.fired.set()

        monkeypatch.setattr("archiver.api.transport.threading.Timer", Timer)


def _fetch_in_the_background(client: AnalyticsClient) -> list[BaseException]:
    """Fetch HOUR in a worker; the error it ended with (none while it hangs)."""
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            client.fetch(HOUR)
        except ApiError as exc:
            errors.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(GENEROUS)
    assert not worker.is_alive(), "the deadline did not cut the request"
    return errors


def _client(url: str, **options: Any) -> AnalyticsClient:
    return AnalyticsClient(
        base_url=url, token=TOKEN, retry=RetryPolicy(max_attempts=1), timeout=300.0, **options
    )


def test_the_deadline_cuts_a_new_connection_before_any_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The socket is known only from httpcore's trace of the connect: the cut must use it.
    deadline = Deadline(monkeypatch)
    arrived = threading.Event()
    deadline.when = arrived  # the request is on the wire, its socket connected

    def stall(conn: socket.socket, stop: threading.Event) -> None:
        arrived.set()
        stop.wait()

    with raw_server(stall) as url, _client(url) as client:
        errors = _fetch_in_the_background(client)
    assert len(errors) == 1
    assert isinstance(errors[0], TransportError)
    assert "overall deadline" in str(errors[0])


@pytest.mark.parametrize("cut", ["after-headers", "before-headers"])
def test_the_deadline_cuts_a_reused_connection(monkeypatch: pytest.MonkeyPatch, cut: str) -> None:
    # A kept-alive connection is not traced again: its socket is known once headers come.
    # "after-headers": the deadline fires while the body stalls; "before-headers": it fired
    # while the vendor had not answered yet, with nothing to cut then.
    deadline = Deadline(monkeypatch)
    arrived = threading.Event()
    reached = threading.Event()

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")  # the first
        conn.recv(65536)  # the second request, on the same connection
        arrived.set()
        if cut == "before-headers":
            deadline.fired.wait(GENEROUS)
        conn.sendall(HEADERS)
        stop.wait()

    with raw_server(serve) as url, _client(url, reached=reached) as client:
        with pytest.raises(ApiError, match="HTTP 404"):
            client.fetch(HOUR)
        reached.clear()  # set again once the second request's headers are read
        deadline.when = reached if cut == "after-headers" else arrived
        errors = _fetch_in_the_background(client)
    assert deadline.fired.is_set()
    assert len(errors) == 1
    assert "overall deadline" in str(errors[0])
