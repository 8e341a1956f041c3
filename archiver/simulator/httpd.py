"""The simulator's HTTP plumbing: a threaded loopback server handing each request over whole."""

from __future__ import annotations

import email.utils
import logging
import socket
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from archiver.simulator.rendering import Answer, server_error

log = logging.getLogger(__name__)


class Vendor(Protocol):
    """What the HTTP layer needs of the simulator: its clock and its answers."""

    def now(self) -> datetime:
        """The simulator's current time."""
        ...

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer one HTTP request."""
        ...


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (killed, timed out) is routine here, not a server fault.
        log.debug("simulator: connection from %s ended early", client_address)


class _Handler(BaseHTTPRequestHandler):
    sim: Vendor
    protocol_version = "HTTP/1.1"

    def date_time_string(self, timestamp: float | None = None) -> str:
        """Every answer's `Date` header is the simulator's clock, as the vendor's is its own."""
        return email.utils.format_datetime(self.sim.now(), usegmt=True)

    def send_response(self, code: int, message: str | None = None) -> None:
        """As the standard one, but `Date` is left to `_handle`: the vendor's answer may
        bring its own (a fault: a wrong clock, or none)."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and
        # delayed ACKs hold every keep-alive response back by ~40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, out_headers, out = self.sim.answer(self.command, self.path, headers, body)
        except Exception:  # a bug in the simulator must not look like a vendor quirk
            log.exception("simulator failed on %s %s", self.command, self.path)
            status, out_headers, out = server_error(500, "simulator bug")
        self.send_response(status)
        date = out_headers.pop("Date", None)
        if date is None:
            date = self.date_time_string()
        if date:  # "": the answer goes without one
            self.send_header("Date", date)
        for name, value in out_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = _handle
    do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator: " + format, *args)


def serve(vendor: Vendor, host: str, port: int) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Serve `vendor` on `host:port` in a daemon thread; returns the server and the thread."""

    class Handler(_Handler):
        sim = vendor

    server = _Server((host, port), Handler)
    server.daemon_threads = True
    # A short poll keeps stop() (shutdown waits for the poll loop) from costing half a second.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="simulator", daemon=True
    )
    thread.start()
    return server, thread
