"""The webhook receiver and its HTTP shell, mutant by mutant: what an operator and the vendor see.

Each test here kills mutants of `archiver/service/webhooks.py` that the older tests let live
(bench/MUTATION.md names them): the refusals' log lines and counters, the body-size
bounds, connections dropped after a refusal, the response's headers, and a server whose
threads never keep the process alive and whose socket is closed by `stop()`.
"""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from archiver.observability import Metrics
from archiver.service.webhooks import PATH, WebhookReceiver, WebhookServer, sign
from tests.test_webhooks import NOW, SECRET, feed_event, outcome, signed, spool_in

MAX_BODY = 4096
LOGGER = "archiver.service.webhooks"


@pytest.fixture
def sqlite_engine(sqlite_copy: Engine) -> Engine:
    """A migrated, empty SQLite archive."""
    return sqlite_copy


@pytest.fixture
def receiver(sqlite_engine: Engine, tmp_path: Path) -> tuple[WebhookReceiver, Metrics]:
    metrics = Metrics()
    made = WebhookReceiver(
        engine=sqlite_engine,
        spool=spool_in(tmp_path),
        secret=SECRET,
        now=lambda: NOW,
        max_body_bytes=MAX_BODY,
        metrics=metrics,
    )
    return made, metrics


@pytest.fixture
def server(receiver: tuple[WebhookReceiver, Metrics]) -> Iterator[WebhookServer]:
    started = WebhookServer(receiver[0], address="127.0.0.1", port=0).start()
    yield started
    started.stop()


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


def _address(server: WebhookServer) -> tuple[str, int]:
    url = httpx.URL(server.url)
    assert url.host == "127.0.0.1"
    assert url.port is not None
    return url.host, url.port


def _exchange(server: WebhookServer, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection (a socket timeout, i.e. a
    connection kept open, fails the test)."""
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_a_bad_signature_is_logged_for_the_operator_naming_the_header(
    receiver: tuple[WebhookReceiver, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    hook, metrics = receiver
    body = feed_event("intruder")
    assert hook.receive(body, {"content-type": "application/json"}) == (400, "bad signature")
    assert _messages(caplog, logging.WARNING) == [
        "webhook refused: missing or wrong X-Millicast-Signature"
    ]
    assert outcome(metrics, "bad_signature") == 1


def test_a_signed_body_nested_too_deeply_is_refused_counted_and_logged(
    receiver: tuple[WebhookReceiver, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    hook, metrics = receiver
    body = b"[" * 100_000 + b"]" * 100_000
    assert hook.receive(body, _lower(signed(body))) == (400, "nested too deeply")
    assert outcome(metrics, "bad_body") == 1
    assert _messages(caplog, logging.WARNING) == [
        "webhook refused: a signed JSON body nested too deeply (200000 bytes)"
    ]


def test_a_signed_body_that_is_not_json_is_logged_by_its_size_only(
    receiver: tuple[WebhookReceiver, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    hook, metrics = receiver
    body = b"<html>not json</html>"
    assert hook.receive(body, _lower(signed(body))) == (400, "not JSON")
    assert outcome(metrics, "bad_body") == 1
    assert _messages(caplog, logging.WARNING) == [
        "webhook refused: a signed body that is not JSON (21 bytes)"
    ]


def test_a_full_spool_is_logged_as_an_error_naming_the_bound(
    sqlite_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    metrics = Metrics()
    hook = WebhookReceiver(
        engine=sqlite_engine,
        spool=spool_in(tmp_path, max_bytes=1),
        secret=SECRET,
        now=lambda: NOW,
        metrics=metrics,
    )
    body = feed_event("no_room")
    assert hook.receive(body, _lower(signed(body))) == (503, "spool full")
    assert outcome(metrics, "spool_full") == 1
    [message] = _messages(caplog, logging.ERROR)
    assert message.startswith("webhook refused (503): the webhook spool ")
    assert "is full" in message
    assert "ARCHIVER_WEBHOOK_SPOOL_MAX_BYTES" in message


def test_a_spool_the_disk_refuses_answers_503_counts_it_and_logs_the_reason(
    receiver: tuple[WebhookReceiver, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    hook, metrics = receiver
    shutil.rmtree(hook.applier.spool.root)  # the folder gone under the running service
    body = feed_event("kept_nowhere")
    assert hook.receive(body, _lower(signed(body))) == (503, "not kept")
    assert outcome(metrics, "spool_failed") == 1
    assert outcome(metrics, "spooled") == 0
    # The reason as the system words it, without errno and path noise.
    assert _messages(caplog, logging.ERROR) == [
        "webhook refused (503): cannot write the spool: No such file or directory"
    ]


def test_the_answer_is_plain_text_with_its_length(server: WebhookServer) -> None:
    body = feed_event("sample_stream")
    with httpx.Client(timeout=10) as http:
        answer = http.post(server.url, content=body, headers=signed(body))
    assert answer.status_code == 200
    assert answer.text == "ok"
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["content-length"] == "2"


def test_each_request_is_logged_at_debug_level(
    server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with httpx.Client(timeout=10) as http:
        assert http.get(server.url).status_code == 405
    lines = _messages(caplog, logging.DEBUG)
    assert any(
        line.startswith("webhooks: ") and '"GET /webhooks HTTP/1.1" 405' in line for line in lines
    ), lines


def test_a_body_of_exactly_the_limit_is_read_one_byte_more_is_not(
    server: WebhookServer, receiver: tuple[WebhookReceiver, Metrics]
) -> None:
    _, metrics = receiver
    key = base64.b64decode(SECRET)
    exact = b" " * MAX_BODY  # signed, but not JSON: read, then refused as a bad body
    over = b" " * (MAX_BODY + 1)
    with httpx.Client(timeout=10) as http:
        answer = http.post(
            server.url, content=exact, headers={"X-Millicast-Signature": sign(key, exact)}
        )
        assert (answer.status_code, answer.text) == (400, "not JSON")
        answer = http.post(
            server.url, content=over, headers={"X-Millicast-Signature": sign(key, over)}
        )
        assert (answer.status_code, answer.text) == (413, "too large")
        # An empty body is read (and is not JSON), not refused as too large.
        empty = b""
        answer = http.post(
            server.url, content=empty, headers={"X-Millicast-Signature": sign(key, empty)}
        )
        assert (answer.status_code, answer.text) == (400, "not JSON")
    assert outcome(metrics, "too_large") == 1
    assert outcome(metrics, "bad_body") == 2


def test_a_negative_length_is_refused_and_the_connection_dropped(
    server: WebhookServer, receiver: tuple[WebhookReceiver, Metrics]
) -> None:
    request = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".encode()
    received = _exchange(server, request)
    assert received.startswith(b"HTTP/1.1 413 ")
    assert received.endswith(b"\r\n\r\ntoo large")
    assert outcome(receiver[1], "too_large") == 1


def test_an_oversized_body_is_never_waited_for_the_connection_is_dropped(
    server: WebhookServer,
) -> None:
    # Only the head is sent: a server that kept the connection would wait for the body (or the
    # next request) and the read below would time out instead of ending.
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n"
    received = _exchange(server, head.encode())
    assert received.startswith(b"HTTP/1.1 413 ")
    assert received.endswith(b"\r\n\r\ntoo large")


def test_a_request_without_a_length_is_answered_411_and_the_connection_dropped(
    server: WebhookServer,
) -> None:
    received = _exchange(server, f"POST {PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert received.startswith(b"HTTP/1.1 411 ")
    assert received.endswith(b"\r\n\r\nlength required")


def test_a_request_whose_handling_fails_is_logged_at_debug_and_the_server_goes_on(
    server: WebhookServer,
    receiver: tuple[WebhookReceiver, Metrics],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    hook, _ = receiver

    def reset(body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        raise ConnectionResetError("the peer went away")

    with monkeypatch.context() as patched:
        patched.setattr(hook, "receive", reset)
        with httpx.Client(timeout=10) as http, pytest.raises(httpx.RemoteProtocolError):
            http.post(server.url, content=b"{}")
    assert any(
        line.startswith("webhooks: connection from ('127.0.0.1', ")
        and line.endswith(" ended early")
        for line in _messages(caplog, logging.DEBUG)
    )
    body = feed_event("after_the_reset")
    with httpx.Client(timeout=10) as http:
        assert http.post(server.url, content=body, headers=signed(body)).status_code == 200


def test_a_running_server_never_keeps_the_process_from_exiting(
    receiver: tuple[WebhookReceiver, Metrics],
) -> None:
    before = set(threading.enumerate())
    server = WebhookServer(receiver[0], address="127.0.0.1", port=0).start()
    try:
        with httpx.Client(timeout=10) as http:
            body = feed_event("sample_stream")
            assert http.post(server.url, content=body, headers=signed(body)).status_code == 200
            # The keep-alive connection holds its handler thread while the client is open.
            started = [t for t in threading.enumerate() if t not in before and t.is_alive()]
            names = {t.name for t in started}
            assert "webhooks" in names
            assert any("process_request_thread" in name for name in names), names
            assert all(t.daemon for t in started), [(t.name, t.daemon) for t in started]
    finally:
        server.stop()


def test_stop_closes_the_socket_and_ends_the_server_and_timer_threads(
    receiver: tuple[WebhookReceiver, Metrics],
) -> None:
    before = set(threading.enumerate())
    server = WebhookServer(receiver[0], address="127.0.0.1", port=0).start()
    address = _address(server)
    with httpx.Client(timeout=10) as http:
        assert http.get(server.url).status_code == 405
    started = [t for t in threading.enumerate() if t not in before]
    server.stop()
    # The timer's thread is joined by stop(); the serving loop ends at its next poll.
    assert [t.name for t in started if t.name == "webhook-spool" and t.is_alive()] == []
    serving = [t for t in started if t.name == "webhooks"]
    assert serving
    serving[0].join(10)
    assert not serving[0].is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=10).close()
