"""The simulator: the vendor's clock, lifecycle and routing over rendering, faults, oracle."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from archiver.simulator import gql, httpd, rendering, vendor
from archiver.simulator.buckets import format_iso, utc
from archiver.simulator.faults import FaultDraws, Faults, SlowGate, forbidden, mislabelled
from archiver.simulator.model import SimConfig
from archiver.simulator.oracle import LoggedRequest, Oracle, usage_row
from archiver.simulator.rendering import Answer, BadRequest, Query, failure, json_answer
from archiver.simulator.traffic import Traffic
from archiver.simulator.webhooks import WebhookDelivery, WebhookSender, WebhookTarget

# Importers of this module's former contents keep working.
__all__ = [
    "Answer",
    "Faults",
    "LoggedRequest",
    "Simulator",
    "WebhookDelivery",
    "WebhookTarget",
    "usage_row",
]


class Simulator:
    """The fake vendor: answers requests from a Traffic model at its clock's time.

    Use `start()`/`stop()` (or `with`) to serve it on a loopback port, or call `answer()`
    directly.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        token: str | None = "sim-token",
        clock: str = "manual",
        start: datetime | None = None,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_requests: bool = False,
        webhook: WebhookTarget | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.traffic = Traffic(self.config)
        self.slow_gate = SlowGate()  # tests release pages held by `graphql_slow_page`
        self.token = token
        # Reassignable while serving: the next request draws from the new faults.
        self.faults = faults or Faults()
        self._fault_draws = FaultDraws(self.faults.seed)
        self._real_clock = clock == "real"
        self._now = utc(start) if start else datetime.now(UTC).replace(microsecond=0)
        self.oracle = Oracle(self.traffic, log_requests=log_requests)
        self.audience = self.oracle.audience  # feeds and viewers behind /graphql
        self.stats: Counter[tuple[str, int]] = self.oracle.stats
        self.request_log: list[LoggedRequest] = self.oracle.request_log
        self.revealed: dict[str, dict[str, datetime]] = self.oracle.revealed
        self.webhook = webhook
        self.webhooks = WebhookSender(
            self.traffic,
            webhook,
            now=self.now,
            delivered=lambda name, at: self.oracle.reveal([name], "webhook", at),
        )
        self.webhook_log: list[WebhookDelivery] = self.webhooks.log
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None

    @property
    def log_requests(self) -> bool:
        """Whether analytics requests are kept in `request_log`."""
        return self.oracle.log_requests

    @log_requests.setter
    def log_requests(self, value: bool) -> None:
        self.oracle.log_requests = value

    # --- clock ---------------------------------------------------------------------------

    def now(self) -> datetime:
        """The simulator's current time."""
        return datetime.now(UTC) if self._real_clock else self._now

    def set_now(self, moment: datetime) -> None:
        """Move the manual clock (it may go anywhere: tests replay history)."""
        if self._real_clock:
            raise ValueError("the clock is real; start the simulator with --clock manual")
        self._now = utc(moment)
        self.send_webhooks()

    def advance(self, delta: timedelta) -> datetime:
        """Move the manual clock forward by `delta`; returns the new time."""
        self.set_now(self._now + delta)
        return self._now

    def prepare(self) -> None:
        """Sum the account's days up to now before serving: at 10,000 streams each costs
        0.2 s (usage) and 0.5 s (viewers), too long to pay inside the first answers."""
        self.traffic.prepare(self.now())
        self.audience.prepare(self.now())

    # --- serving -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Simulator:
        """Serve in a background thread on the configured loopback host and port."""
        self._server, self._thread = httpd.serve(self, self._host, self._port)
        if self._real_clock and self.webhook is not None:
            self._ticker = threading.Thread(target=self._tick, name="sim-webhooks", daemon=True)
            self._ticker.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (starting first if needed)."""
        if self._server is None:
            self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def send_webhooks(self) -> None:
        """POST the feed events of sessions that started or ended since the last call, once."""
        self.webhooks.send()

    def _tick(self) -> None:
        while self._server is not None:
            self.send_webhooks()
            time.sleep(1.0)

    # --- requests ------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer one HTTP request; every answer is counted in `stats`."""
        path = urlsplit(target).path.rstrip("/")
        query = parse_qs(urlsplit(target).query, keep_blank_values=True)
        now = self.now()
        status, out_headers, out = self._route(method, path, query, headers, body)
        self.oracle.count(path, status)
        date = None if path.startswith("/_sim/") else self._fault_draws.date(self.faults, path, now)
        if date is not None:  # a fault bends the vendor's clock (faults.py)
            out_headers = {**out_headers, "Date": date}
        return status, out_headers, out

    def _route(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: bytes
    ) -> Answer:
        if path.startswith("/_sim/"):
            return self._control(method, path, query, body)
        if path == vendor.GRAPHQL:
            return self._graphql(method, path, headers, body)
        if method != "GET":
            return failure(405, "Method not allowed")
        if not path.startswith((vendor.ANALYTICS, vendor.MONITORING, vendor.PUBLISH_TOKENS)):
            return failure(404, "Not found")
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return failure(401, "Unauthorized")
        now = self.now()
        fault = forbidden(self.faults, path) or self._fault_draws.before(self.faults)
        if fault is not None:
            self.oracle.log(now, path, query, fault[0], truncated=False)
            return fault
        try:
            listed: list[str] = []
            if path == vendor.MONITORING:
                answer, listed = rendering.monitoring(self.traffic, query, self.now())
            elif path == vendor.PUBLISH_TOKENS:
                answer, listed = rendering.publish_tokens(self.traffic, query)
            else:
                name = path.removeprefix(vendor.ANALYTICS)
                if name not in vendor.SERIES:
                    return failure(404, "Not found")
                data = rendering.series(
                    self.traffic, name, query, self.now(), self.faults.stranger_stream
                )
                answer = json_answer(200, {"status": "success", "data": data})
        except BadRequest as exc:
            return rendering.validation_error(exc.field, exc.message)
        final = mislabelled(self.faults, path, self._fault_draws.after(self.faults, answer))
        self.oracle.log(now, path, query, final[0], truncated=final[2] is not answer[2])
        if listed and final is answer:  # a cut or mislabelled page reveals nothing
            source = "monitoring" if path == vendor.MONITORING else "token"
            self.oracle.reveal(listed, source, now)
        return final

    def _graphql(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if method != "POST":
            return failure(405, "Method not allowed")
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return failure(401, "Unauthorized")
        fault = forbidden(self.faults, path) or self._fault_draws.before(self.faults)
        if fault is not None:
            return fault
        now = self.now().replace(microsecond=0)  # whole seconds: pages of one walk share rows
        context = gql.Context(
            self.audience, now, self.config.graphql_max_per_page, self.faults, self.slow_gate
        )
        errors = self._fault_draws.graphql_errors(self.faults)
        return self._fault_draws.after(self.faults, gql.answer(body, context, errors))

    # --- control and truth ---------------------------------------------------------------

    def _control(self, method: str, path: str, query: Query, body: bytes) -> Answer:
        try:
            if path == "/_sim/clock" and method == "POST":
                payload = json.loads(body or b"{}")
                now = {"now": [str(payload.get("now", ""))]}
                self.set_now(rendering.parse_time(now, "now"))
                return json_answer(200, {"now": format_iso(self.now())})
            if path == "/_sim/clock":
                return json_answer(200, {"now": format_iso(self.now()), "real": self._real_clock})
            if path == "/_sim/truth":
                return json_answer(200, {"rows": self.truth_rows(query)})
            if path == "/_sim/revealed":
                return json_answer(200, self.revealed_payload())
            if path == "/_sim/stats":
                return json_answer(200, self.stats_payload())
        except BadRequest as exc:
            return rendering.validation_error(exc.field, exc.message)
        except ValueError as exc:
            return failure(400, str(exc))
        return failure(404, "Not found")

    def stats_payload(self) -> dict[str, Any]:
        """Requests per path and status."""
        return self.oracle.stats_payload()

    def revealed_payload(self) -> dict[str, Any]:
        """Per name, when each source first told it to the archiver."""
        return self.oracle.revealed_payload()

    def truth_rows(self, query: Query) -> list[dict[str, Any]]:
        """Final values of one dataset at the simulator's clock (see `Oracle.truth_rows`)."""
        return self.oracle.truth_rows(query, self.now())

    def attribution_rows(self, query: Query) -> list[dict[str, Any]]:
        """Attribution per final bucket at the simulator's clock (see `Oracle`)."""
        return self.oracle.attribution_rows(query, self.now())
