"""The simulator's HTTP face: the vendor's paths, parameters, envelopes, errors and faults."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from archiver.simulator import vendor
from archiver.simulator.traffic import (
    GEO_FIELDS,
    Session,
    SimConfig,
    Stream,
    Traffic,
    Usage,
    refresh_time,
)
from archiver.simulator.vendor import MAX_NAME_LENGTH, MAX_NAMES_PER_REQUEST, refusal_reason
from archiver.timeutil import Resolution, floor, format_iso, next_start, utc

log = logging.getLogger(__name__)

Answer = tuple[int, dict[str, str], bytes]
ANALYTICS = "/api/analytics/"
MONITORING = "/api/monitoring/streams"
PUBLISH_TOKENS = "/api/publish_token/list"
ATTRIBUTION = "attribution"


@dataclass(frozen=True)
class Faults:
    """Optional misbehaviour, drawn per API request from a seeded generator."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    truncate_rate: float = 0.0
    retry_after_seconds: int = 1
    seed: int = 0


@dataclass(frozen=True)
class WebhookTarget:
    """Where the vendor POSTs signed feed events, and how many it loses (seeded)."""

    url: str
    secret: str  # base64, as the vendor's dashboard shows it
    loss_rate: float = 0.0
    seed: int = 0
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class WebhookDelivery:
    """One feed event: when it happened, to whom, and what became of it."""

    at: datetime
    event: str
    stream: str
    lost: bool
    status: int | None  # the receiver's answer; None when lost or unreachable


@dataclass(frozen=True)
class LoggedRequest:
    """One analytics request as answered: for tests that judge what the archiver could know."""

    now: datetime
    path: str
    resolution: str
    start: datetime
    stop: datetime
    streams: tuple[str, ...]
    status: int
    truncated: bool


@dataclass(frozen=True)
class _Series:
    kind: str  # "series" or "geo"
    per_stream: bool
    resolutions: tuple[Resolution, ...]


SERIES = {
    "account/series": _Series("series", False, (Resolution.HOUR, Resolution.DAY, Resolution.MONTH)),
    "account/geo_series": _Series("geo", False, (Resolution.HOUR, Resolution.DAY)),
    "streams/series": _Series("series", True, (Resolution.HOUR, Resolution.DAY)),
    "streams/geo_series": _Series("geo", True, (Resolution.HOUR, Resolution.DAY)),
}
TRUTH_DATASETS = {
    "account_usage": "account/series",
    "account_geo_usage": "account/geo_series",
    "stream_usage": "streams/series",
    "stream_geo_usage": "streams/geo_series",
}


class BadRequest(Exception):
    """A vendor-style 400: message plus per-field errors."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> Answer:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body


def _fail(field: str, message: str) -> Answer:
    return _json(
        400,
        {"status": "fail", "data": {"message": "Validation errors", "errors": {field: [message]}}},
    )


def _parse_time(query: dict[str, list[str]], name: str) -> datetime:
    values = query.get(name)
    if not values or not values[0]:
        raise BadRequest(name, f"The {name} field is required.")
    text = values[0]
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise BadRequest(name, f"The value '{text}' is not valid for {name}.") from None


def _bandwidth(usage: Usage) -> dict[str, dict[str, int]]:
    bytes_in, bytes_out = usage.bandwidth()
    r_in, r_out, r_seconds, c_in, c_out = usage.extra
    return {
        "bandwidth": {"bytesOut": bytes_out, "bytesIn": bytes_in},
        "standardStream": {
            "bytesOut": bytes_out - r_out - c_out,
            "bytesIn": bytes_in - r_in - c_in,
        },
        "restream": {"secondsUsed": r_seconds, "bytesOut": r_out, "bytesIn": r_in},
        "geoCascade": {"bytesOut": c_out, "bytesIn": c_in},
    }


def _geo(usage: Usage) -> dict[str, dict[str, int]]:
    return {
        country: {
            "publishes": v[0],
            "views": v[1],
            "publishDuration": v[2],
            "viewDuration": v[3],
            "bytesOut": v[5],
            "bytesIn": v[4],
        }
        for country, v in sorted(usage.geo.items())
        if any(v)
    }


def usage_row(usage: Usage) -> dict[str, int]:
    """A bandwidth bucket in the archive's column names."""
    bytes_in, bytes_out = usage.bandwidth()
    r_in, r_out, r_seconds, c_in, c_out = usage.extra
    return {
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "standard_bytes_in": bytes_in - r_in - c_in,
        "standard_bytes_out": bytes_out - r_out - c_out,
        "restream_bytes_in": r_in,
        "restream_bytes_out": r_out,
        "restream_seconds": r_seconds,
        "cascade_bytes_in": c_in,
        "cascade_bytes_out": c_out,
    }


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
        self.token = token
        self.faults = faults or Faults()
        self._real_clock = clock == "real"
        self._now = utc(start) if start else datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self.stats: Counter[tuple[str, int]] = Counter()
        self.log_requests = log_requests
        self.request_log: list[LoggedRequest] = []
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._init_sources(webhook)

    def _init_sources(self, webhook: WebhookTarget | None) -> None:
        self.webhook = webhook
        self.webhook_log: list[WebhookDelivery] = []
        self._webhook_lock = threading.Lock()
        self._webhook_random = random.Random(webhook.seed if webhook else 0)
        self._webhook_until = self.now()
        self._ticker: threading.Thread | None = None
        # name -> source ("monitoring", "token", "webhook") -> first time it told the name
        self.revealed: dict[str, dict[str, datetime]] = {}

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
        simulator = self

        class Handler(_Handler):
            sim = simulator

        self._server = _Server((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="simulator", daemon=True
        )
        self._thread.start()
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

    # --- requests ------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer one HTTP request; every answer is counted in `stats`."""
        path = urlsplit(target).path.rstrip("/")
        query = parse_qs(urlsplit(target).query, keep_blank_values=True)
        status, out_headers, out = self._route(method, path, query, headers, body)
        with self._lock:
            self.stats[(path, status)] += 1
        return status, out_headers, out

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> Answer:
        if path.startswith("/_sim/"):
            return self._control(method, path, query, body)
        if method != "GET":
            return _json(405, {"status": "fail", "data": {"message": "Method not allowed"}})
        if not path.startswith((ANALYTICS, MONITORING, PUBLISH_TOKENS)):
            return _json(404, {"status": "fail", "data": {"message": "Not found"}})
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return _json(401, {"status": "fail", "data": {"message": "Unauthorized"}})
        now = self.now()
        fault = self._fault()
        if fault is not None:
            self._log(now, path, query, fault[0], truncated=False)
            return fault
        try:
            listed: list[str] = []
            if path == MONITORING:
                answer, listed = self._monitoring(query)
            elif path == PUBLISH_TOKENS:
                answer, listed = self._publish_tokens(query)
            else:
                name = path.removeprefix(ANALYTICS)
                if name not in SERIES:
                    return _json(404, {"status": "fail", "data": {"message": "Not found"}})
                answer = _json(200, {"status": "success", "data": self._series(name, query)})
        except BadRequest as exc:
            return _fail(exc.field, exc.message)
        final = self._maybe_truncate(answer)
        self._log(now, path, query, final[0], truncated=final[2] is not answer[2])
        if listed and final[2] is answer[2]:
            self._reveal(listed, "monitoring" if path == MONITORING else "token", now)
        return final

    def _log(
        self,
        now: datetime,
        path: str,
        query: dict[str, list[str]],
        status: int,
        *,
        truncated: bool,
    ) -> None:
        if not self.log_requests or not path.startswith(ANALYTICS):
            return
        try:
            start, stop = _parse_time(query, "startDate"), _parse_time(query, "stopDate")
        except BadRequest:
            return
        entry = LoggedRequest(
            now,
            path,
            (query.get("resolution") or [""])[0],
            start,
            stop,
            tuple(query.get("streamNames", [])),
            status,
            truncated,
        )
        with self._lock:
            self.request_log.append(entry)

    def _fault(self) -> Answer | None:
        faults = self.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if not (faults.error_rate or faults.throttle_rate):
            return None
        with self._lock:
            draw = self._random.random()
        if draw < faults.error_rate:
            return _json(
                503,
                {"status": "error", "message": "Service Unavailable", "code": 503, "data": None},
            )
        if draw < faults.error_rate + faults.throttle_rate:
            return _json(
                429,
                {"status": "error", "message": "Too Many Requests", "code": 429, "data": None},
                {"Retry-After": str(faults.retry_after_seconds)},
            )
        return None

    def _maybe_truncate(self, answer: Answer) -> Answer:
        if not self.faults.truncate_rate:
            return answer
        with self._lock:
            cut = self._random.random() < self.faults.truncate_rate
        if not cut:
            return answer
        status, headers, body = answer
        return status, headers, body[: max(len(body) // 2, 1)]

    # --- the vendor's endpoints ----------------------------------------------------------

    def _retention(self, per_stream: bool, resolution: Resolution) -> timedelta | None:
        config = self.config
        if per_stream:
            return timedelta(days=config.stream_retention_days)
        if resolution is Resolution.HOUR:
            return timedelta(days=config.hour_retention_days)
        if resolution is Resolution.DAY:
            return timedelta(days=config.day_retention_days)
        return None

    def _series(self, name: str, query: dict[str, list[str]]) -> dict[str, Any]:
        spec = SERIES[name]
        raw = (query.get("resolution") or [""])[0]
        resolution = next((r for r in spec.resolutions if r.value.lower() == raw.lower()), None)
        if resolution is None:
            allowed = ", ".join(r.value for r in spec.resolutions)
            raise BadRequest("resolution", f"The value '{raw}' is not valid. Use {allowed}.")
        start, stop = _parse_time(query, "startDate"), _parse_time(query, "stopDate")
        if start >= stop:
            raise BadRequest("stopDate", "stopDate must be after startDate.")
        names: list[str] = []
        if spec.per_stream:
            names = query.get("streamNames", [])
            if not names:
                raise BadRequest("streamNames", "The streamNames field is required.")
            if len(names) > MAX_NAMES_PER_REQUEST:
                raise BadRequest(
                    "streamNames", f"At most {MAX_NAMES_PER_REQUEST} stream names are allowed."
                )
            if any(len(n) > MAX_NAME_LENGTH for n in names):
                raise BadRequest(
                    "streamNames", f"Stream names are at most {MAX_NAME_LENGTH} characters."
                )
        now = self.now()
        visible = refresh_time(now)
        retention = self._retention(spec.per_stream, resolution)
        purge_line = None if retention is None else now - retention
        bucket_list: list[datetime] = []
        current = floor(start, resolution)
        while current < stop:
            bucket_list.append(current)
            current = next_start(current, resolution)

        def render(stream: str | None) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for bucket in bucket_list:
                held = purge_line is None or bucket >= purge_line
                known = stream is None or stream in self.traffic.by_name
                usage = (
                    self.traffic.bucket(stream, resolution, bucket, visible_until=visible)
                    if held and known and bucket < visible
                    else Usage()
                )
                out[format_iso(bucket)] = _geo(usage) if spec.kind == "geo" else _bandwidth(usage)
            return out

        def regroup(buckets: dict[str, Any]) -> dict[str, Any]:
            blocks = ("bandwidth", "standardStream", "restream", "geoCascade")
            return {b: {t: v[b] for t, v in buckets.items()} for b in blocks}

        if not spec.per_stream:
            rendered = render(None)
            return {"geo": rendered} if spec.kind == "geo" else regroup(rendered)
        reportable = [n for n in dict.fromkeys(names) if refusal_reason(n) is None]
        if spec.kind == "geo":
            return {"geo": {n: render(n) for n in reportable}}
        return {n: regroup(render(n)) for n in reportable}

    def _monitoring(self, query: dict[str, list[str]]) -> tuple[Answer, list[str]]:
        try:
            page = int((query.get("page") or ["1"])[0])
            size = int((query.get("itemsOnPage") or ["10"])[0])
        except ValueError:
            raise BadRequest("page", "page and itemsOnPage must be integers.") from None
        if page < 1 or not 1 <= size <= 1000:
            raise BadRequest("itemsOnPage", "page >= 1 and 1 <= itemsOnPage <= 1000.")
        now = self.now()
        found = sorted(
            self.traffic.live_streams(now), key=lambda item: (-item[1].start, item[0].index)
        )
        chosen = found[(page - 1) * size : page * size]
        items = []
        for stream, session, live in chosen:
            started = session.started_at()
            items.append(
                {
                    "streamId": f"simacct/{stream.name}",
                    "streamName": stream.name,
                    "clusterId": "sim-1",
                    "clusters": ["sim-1"],
                    "secureStream": False,
                    "isRecordingAllowed": False,
                    "multisource": False,
                    "live": live,
                    "startTime": started.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "viewerCount": 0,
                    "hasRedundant": False,
                    "restreaming": stream.restreams,
                    "feeds": [],
                }
            )
        pages = (len(found) + size - 1) // size
        pagination = {"totalItems": len(found), "totalPages": pages, "itemsOnPage": len(items)}
        answer = _json(
            200, {"status": "success", "data": {"pagination": pagination, "data": items}}
        )
        return answer, [stream.name for stream, _, _ in chosen]

    # --- control and truth ---------------------------------------------------------------

    def _control(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Answer:
        try:
            if path == "/_sim/clock" and method == "POST":
                payload = json.loads(body or b"{}")
                self.set_now(_parse_time({"now": [str(payload.get("now", ""))]}, "now"))
                return _json(200, {"now": format_iso(self.now())})
            if path == "/_sim/clock":
                return _json(200, {"now": format_iso(self.now()), "real": self._real_clock})
            if path == "/_sim/truth":
                return _json(200, {"rows": self.truth_rows(query)})
            if path == "/_sim/revealed":
                return _json(200, self.revealed_payload())
            if path == "/_sim/stats":
                return _json(200, self.stats_payload())
        except BadRequest as exc:
            return _fail(exc.field, exc.message)
        except ValueError as exc:
            return _json(400, {"status": "fail", "data": {"message": str(exc)}})
        return _json(404, {"status": "fail", "data": {"message": "Not found"}})

    def stats_payload(self) -> dict[str, Any]:
        """Requests per path and status."""
        with self._lock:
            items = list(self.stats.items())
        per_path: dict[str, dict[str, int]] = {}
        for (path, status), count in sorted(items):
            per_path.setdefault(path, {})[str(status)] = count
        api_total = sum(c for (p, _), c in items if not p.startswith("/_sim/"))
        return {"requests": per_path, "api_requests": api_total}

    def truth_rows(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        """Final values of one dataset and resolution in `[start, stop)`, archive column names.

        Only buckets that are final at the simulator's clock and have any traffic appear;
        purges do not apply (this is what the vendor once held). Names the vendor cannot
        report on are left out.
        """
        dataset = (query.get("dataset") or [""])[0]
        if dataset == ATTRIBUTION:
            return self.attribution_rows(query)
        if dataset not in TRUTH_DATASETS:
            known = ", ".join([*TRUTH_DATASETS, ATTRIBUTION])
            raise BadRequest("dataset", f"dataset must be one of {known}")
        spec = SERIES[TRUTH_DATASETS[dataset]]
        raw = (query.get("resolution") or [""])[0]
        resolution = next((r for r in spec.resolutions if r.value.lower() == raw.lower()), None)
        if resolution is None:
            raise BadRequest("resolution", f"resolution {raw!r} is not served by {dataset}")
        start, stop = _parse_time(query, "start"), _parse_time(query, "stop")
        visible = refresh_time(self.now())
        wanted = set(query.get("stream", []))
        streams: list[str | None] = [None]
        if spec.per_stream:
            streams = [
                s.name
                for s in self.traffic.streams
                if refusal_reason(s.name) is None and (not wanted or s.name in wanted)
            ]
        rows: list[dict[str, Any]] = []
        for stream in streams:
            bucket = floor(start, resolution)
            while bucket < stop and next_start(bucket, resolution) <= visible:
                usage = self.traffic.bucket(stream, resolution, bucket, visible_until=visible)
                key: dict[str, Any] = {
                    "resolution": resolution.value,
                    "period_start": format_iso(bucket),
                }
                if stream is not None:
                    key = {"stream_name": stream, **key}
                if spec.kind == "geo":
                    for country, values in sorted(usage.geo.items()):
                        if any(values):
                            rows.append(
                                {
                                    **key,
                                    "country": country,
                                    **dict(zip(GEO_FIELDS, values, strict=True)),
                                }
                            )
                elif not usage.is_empty():
                    rows.append({**key, **usage_row(usage)})
                bucket = next_start(bucket, resolution)
        return rows

    # --- stream sources: publish tokens, feed webhooks, and who revealed which name --------

    def _publish_tokens(self, query: dict[str, list[str]]) -> tuple[Answer, list[str]]:
        try:
            page = int((query.get("page") or ["1"])[0])
            size = int((query.get("itemsOnPage") or ["10"])[0])
        except ValueError:
            raise BadRequest("page", "page and itemsOnPage must be integers.") from None
        if page < 1 or not 1 <= size <= 1000:
            raise BadRequest("itemsOnPage", "page >= 1 and 1 <= itemsOnPage <= 1000.")
        tokens = vendor.publish_tokens(self.traffic)[(page - 1) * size : page * size]
        exact = [s["streamName"] for t in tokens for s in t["streams"] if s["isRegex"] is False]
        return _json(200, {"status": "success", "data": tokens}), exact

    def _reveal(self, names: list[str], source: str, at: datetime) -> None:
        with self._lock:
            for name in names:
                self.revealed.setdefault(name, {}).setdefault(source, at)

    def revealed_payload(self) -> dict[str, Any]:
        """Per name, when each source first told it to the archiver."""
        with self._lock:
            items = {n: dict(s) for n, s in self.revealed.items()}
        return {
            "streams": {
                name: {src: format_iso(at) for src, at in sorted(sources.items())}
                for name, sources in sorted(items.items())
            }
        }

    def send_webhooks(self) -> None:
        """POST the feed events of sessions that started or ended since the last call, once."""
        target = self.webhook
        if target is None:
            return
        with self._webhook_lock:
            until = self.now()
            if until <= self._webhook_until:
                return
            events = self.traffic.session_events(self._webhook_until, until)
            self._webhook_until = until
            for at, event, stream, session in events:
                lost = self._webhook_random.random() < target.loss_rate
                status = None if lost else self._post_event(target, event, stream, session)
                self.webhook_log.append(WebhookDelivery(at, event, stream.name, lost, status))
                if status is not None and 200 <= status < 300:
                    # Revealed when delivered: a manual clock delivers a jump's events at
                    # its end, and only then can the receiver act on them.
                    self._reveal([stream.name], "webhook", until)

    def _post_event(
        self, target: WebhookTarget, event: str, stream: Stream, session: Session
    ) -> int | None:
        body = vendor.feed_event(event, stream, session)
        headers = {
            "Content-Type": "application/json",
            "X-Millicast-Signature": vendor.signature(target.secret, body),
        }
        try:
            response = httpx.post(
                target.url, content=body, headers=headers, timeout=target.timeout_seconds
            )
        except httpx.HTTPError as exc:
            # The vendor sends each event once: an unreachable receiver loses it for good.
            log.debug("simulator: webhook to %s failed: %s", target.url, type(exc).__name__)
            return None
        return response.status_code

    def _tick(self) -> None:
        while self._server is not None:
            self.send_webhooks()
            time.sleep(1.0)

    def attribution_rows(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        """Per final bucket: the account, the streams some source revealed in time, the rest.

        A revealed stream explains a bucket when the vendor still held the bucket's
        per-stream data when the name was first revealed (by the sources asked for).
        """
        raw = (query.get("resolution") or [""])[0]
        resolution = next(
            (r for r in (Resolution.HOUR, Resolution.DAY) if r.value.lower() == raw.lower()), None
        )
        if resolution is None:
            raise BadRequest("resolution", "attribution is served per Hour and per Day")
        start, stop = _parse_time(query, "start"), _parse_time(query, "stop")
        wanted = set(",".join(query.get("sources", [])).split(",")) - {""}
        retention = timedelta(days=self.config.stream_retention_days)
        visible = refresh_time(self.now())
        with self._lock:
            revealed = {n: dict(s) for n, s in self.revealed.items()}
        first_told: dict[str, datetime] = {}
        for name, sources in revealed.items():
            times = [at for src, at in sources.items() if not wanted or src in wanted]
            if times and name in self.traffic.by_name and vendor.reportable(name):
                first_told[name] = min(times)
        rows: list[dict[str, Any]] = []
        bucket = floor(start, resolution)
        while bucket < stop and next_start(bucket, resolution) <= visible:
            account = self.traffic.bucket(None, resolution, bucket, visible_until=visible)
            a_in, a_out = account.bandwidth()
            s_in = s_out = 0
            for name, told in first_told.items():
                if bucket >= told - retention:
                    usage = self.traffic.bucket(name, resolution, bucket, visible_until=visible)
                    b_in, b_out = usage.bandwidth()
                    s_in, s_out = s_in + b_in, s_out + b_out
            if a_in or a_out:
                rows.append(
                    {
                        "resolution": resolution.value,
                        "period_start": format_iso(bucket),
                        "account_bytes_in": a_in,
                        "account_bytes_out": a_out,
                        "streams_bytes_in": s_in,
                        "streams_bytes_out": s_out,
                        "unattributed_bytes_in": a_in - s_in,
                        "unattributed_bytes_out": a_out - s_out,
                    }
                )
            bucket = next_start(bucket, resolution)
        return rows


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (killed, timed out) is routine here, not a server fault.
        log.debug("simulator: connection from %s ended early", client_address)


class _Handler(BaseHTTPRequestHandler):
    sim: Simulator
    protocol_version = "HTTP/1.1"

    def date_time_string(self, timestamp: float | None = None) -> str:
        """Every answer's `Date` header is the simulator's clock, as the vendor's is its own."""
        return email.utils.format_datetime(self.sim.now(), usegmt=True)

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
            status, out_headers, out = _json(
                500, {"status": "error", "message": "simulator bug", "code": 500, "data": None}
            )
        self.send_response(status)
        for name, value in out_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = _handle
    do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator: " + format, *args)
