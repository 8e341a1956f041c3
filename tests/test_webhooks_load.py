"""The webhook receiver under bursts and hostile bodies: every signed event is answered."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from archiver.observability import Metrics
from archiver.service.webhooks import WebhookReceiver, WebhookServer
from tests.test_webhooks import NOW, SECRET, feed_event, outcome, signed, spool_in, tracked

GENEROUS = 60.0  # seconds a passing run never comes near


def _receiver(
    engine: Engine, spool: Path, metrics: Metrics, max_body_bytes: int = 4096
) -> WebhookReceiver:
    return WebhookReceiver(
        engine=engine,
        spool=spool_in(spool),
        secret=SECRET,
        now=lambda: NOW,
        max_body_bytes=max_body_bytes,
        metrics=metrics,
    )


def _request(name: str) -> bytes:
    body = feed_event(name)
    head = "".join(f"{k}: {v}\r\n" for k, v in signed(body).items())
    return (
        f"POST /webhooks HTTP/1.1\r\nHost: archiver\r\nConnection: close\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(GENEROUS)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@pytest.fixture
def idle_server(engine: Engine, tmp_path: Path) -> Iterator[tuple[WebhookServer, Metrics]]:
    """A server that listens but accepts nothing until the test starts it."""
    metrics = Metrics()
    server = WebhookServer(_receiver(engine, tmp_path, metrics), address="127.0.0.1", port=0)
    yield server, metrics
    server.stop()


def test_a_burst_waits_in_the_listen_queue_while_the_server_is_busy(
    engine: Engine, idle_server: tuple[WebhookServer, Metrics]
) -> None:
    # Nothing accepts yet: every connection must complete in the kernel's listen queue alone.
    # With a short backlog the connections beyond it never complete (their SYNs are dropped).
    server, metrics = idle_server
    host, port = server.url.split("//")[1].split("/")[0].split(":")
    burst = 128
    pending: list[socket.socket] = []
    try:
        for _ in range(burst):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex((host, int(port)))
            pending.append(sock)
        connected: set[int] = set()
        deadline = time.monotonic() + GENEROUS
        while len(connected) < burst and time.monotonic() < deadline:
            waiting = [s for s in pending if s.fileno() not in connected]
            _, ready, _ = select.select([], waiting, [], 1.0)
            for sock in ready:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                connected.add(sock.fileno())
        assert len(connected) == burst
        for number, sock in enumerate(pending):
            sock.setblocking(True)
            sock.sendall(_request(f"burst_{number}"))
        server.start()
        answers = [_answer(sock) for sock in pending]
    finally:
        for sock in pending:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    assert set(tracked(engine)) == {f"burst_{n}" for n in range(burst)}
    assert outcome(metrics, "registered") == burst


def test_many_concurrent_senders_are_all_answered_and_registered(
    engine: Engine, tmp_path: Path
) -> None:
    metrics = Metrics()
    receiver = _receiver(engine, tmp_path, metrics)
    server = WebhookServer(receiver, address="127.0.0.1", port=0).start()
    host, port = server.url.split("//")[1].split("/")[0].split(":")
    senders, each = 64, 8
    answers: list[bytes] = []
    lock = threading.Lock()
    ready = threading.Barrier(senders)

    def send(sender: int) -> None:
        ready.wait(GENEROUS)  # all at once: the burst the vendor sends when many feeds start
        for event in range(each):
            with socket.create_connection((host, int(port)), timeout=GENEROUS) as sock:
                sock.sendall(_request(f"s{sender}_e{event}"))
                answer = _answer(sock)
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(GENEROUS * 2)
    finally:
        server.stop()
    assert len(answers) == senders * each
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    expected = {f"s{s}_e{e}" for s in range(senders) for e in range(each)}
    assert set(tracked(engine)) == expected


def test_a_deeply_nested_signed_body_is_answered_400_and_the_server_keeps_serving(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    metrics = Metrics()
    receiver = _receiver(engine, tmp_path, metrics, max_body_bytes=1_000_000)
    server = WebhookServer(receiver, address="127.0.0.1", port=0).start()
    try:
        with httpx.Client(timeout=GENEROUS) as http:
            for nested in (b"[" * 100_000, b'{"a":' * 100_000):
                answer = http.post(server.url, content=nested, headers=signed(nested))
                assert answer.status_code == 400
            good = feed_event("after_the_attack")
            assert http.post(server.url, content=good, headers=signed(good)).status_code == 200
    finally:
        server.stop()
    assert outcome(metrics, "bad_body") == 2
    assert "nested too deeply" in caplog.text
    assert set(tracked(engine)) == {"after_the_attack"}
