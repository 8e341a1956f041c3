"""Feed webhooks: a small HTTP server that keeps signed feed events and registers their streams."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy.engine import Engine

from archiver.observability import Metrics
from archiver.service.replay import RETRY_SECONDS, SpoolApplier, SpoolTimer, feed_stream_name
from archiver.service.spool import Spool, SpoolFull

log = logging.getLogger(__name__)

PATH = "/webhooks"
SIGNATURE_HEADER = "X-Millicast-Signature"
# Connections the kernel holds while every handler is busy; the vendor never retries an event
# that was reset. Linux caps it at net.core.somaxconn (4096 since 5.4, 128 before).
LISTEN_BACKLOG = 1024
Answer = tuple[int, str]


def sign(key: bytes, body: bytes) -> str:
    """The vendor's signature of `body`: `sha1=` and the HMAC-SHA1 hex digest."""
    return "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()


class WebhookReceiver:
    """Checks, keeps and applies one webhook request; the HTTP server is a thin shell around it."""

    def __init__(
        self,
        *,
        engine: Engine,
        spool: Spool,
        secret: str,
        now: Callable[[], datetime],
        max_body_bytes: int = 65536,
        metrics: Metrics | None = None,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.engine = engine
        self._key = base64.b64decode(secret)
        self._now = now
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.applier = SpoolApplier(
            engine=engine, spool=spool, metrics=metrics, retry_seconds=retry_seconds
        )

    def __repr__(self) -> str:
        return "WebhookReceiver()"  # the key stays out of every repr

    def count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhooks.labels(outcome=outcome).inc()

    def verified(self, body: bytes, signature: str | None) -> bool:
        """Whether `signature` is the vendor's signature of `body` (constant-time compare)."""
        expected = sign(self._key, body).encode()
        return hmac.compare_digest(expected, (signature or "").strip().encode())

    def receive(self, body: bytes, headers: dict[str, str]) -> Answer:
        """Answer one POST: 400 for a bad signature or body; a feed event is kept in the spool
        (fsynced) before any 2xx: 200 once applied, 202 while the archive cannot be written,
        503 when it cannot be kept (spool full, disk refusing), so the loss shows."""
        if not self.verified(body, headers.get(SIGNATURE_HEADER.lower())):
            self.count("bad_signature")
            log.warning("webhook refused: missing or wrong %s", SIGNATURE_HEADER)
            return 400, "bad signature"
        if headers.get("content-type", "").split(";")[0].strip().lower().startswith("image/"):
            self.count("ignored")  # a thumbnail: names no new stream
            return 200, "ignored"
        try:
            event = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.count("bad_body")
            log.warning("webhook refused: a signed body that is not JSON (%d bytes)", len(body))
            return 400, "not JSON"
        except RecursionError:
            # Arrays or objects nested deeper than the parser's stack: no feed event looks so.
            self.count("bad_body")
            log.warning(
                "webhook refused: a signed JSON body nested too deeply (%d bytes)", len(body)
            )
            return 400, "nested too deeply"
        if feed_stream_name(event) is None:
            self.count("ignored")
            return 200, "ignored"
        try:
            kept = self.applier.spool.keep(body, self._now())
        except SpoolFull as exc:
            self.count("spool_full")
            log.error("webhook refused (503): %s", exc)
            return 503, "spool full"
        except OSError as exc:
            self.count("spool_failed")
            log.error("webhook refused (503): cannot write the spool: %s", exc.strerror or exc)
            return 503, "not kept"
        self.applier.apply()
        if kept.exists():
            self.count("spooled")  # durable; applied when the archive takes it
            return 202, "kept"
        return 200, "ok"


class WebhookServer:
    """Serves `POST /webhooks` in a background thread (stdlib http.server)."""

    def __init__(self, receiver: WebhookReceiver, *, address: str, port: int) -> None:
        self.receiver = receiver
        receiving = receiver

        class Handler(_Handler):
            receiver = receiving

        self._server = _Server((address, port), Handler)
        self._server.daemon_threads = True
        self._timer = SpoolTimer(receiver.applier)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits for one poll
            name="webhooks",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """Where the vendor should POST (before any proxy)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{PATH}"

    def start(self) -> WebhookServer:
        """Start serving, and applying what the spool holds (at once, then on a timer)."""
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():  # shutdown() waits forever for a loop that never ran
            self._server.shutdown()
        self._server.server_close()
        self._timer.stop()


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("webhooks: connection from %s ended early", client_address)


class _Handler(BaseHTTPRequestHandler):
    receiver: WebhookReceiver
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that sends headers and stalls must not hold a thread forever

    def _reply(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0].rstrip("/") != PATH:
            self._reply(404, "not found")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._reply(411, "length required")
            return
        if length < 0 or length > self.receiver.max_body_bytes:
            # Never read an oversized body: answer and drop the connection.
            self.receiver.count("too_large")
            self.close_connection = True
            self._reply(413, "too large")
            return
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, text = self.receiver.receive(body, headers)
        self._reply(status, text)

    def do_GET(self) -> None:
        self._reply(405, "POST only")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhooks: " + format, *args)
