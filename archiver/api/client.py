"""The one HTTP client: auth, retries with backoff, a rate cap, bounded concurrency, errors.

Every httpx exception is translated into the `ApiError` tree here and nowhere else.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import TypeAdapter

from archiver import __version__
from archiver.api import models
from archiver.api.endpoints import (
    ACCOUNT_SERIES,
    MONITORING_STREAMS_PATH,
    PUBLISH_TOKENS_PATH,
    ApiRequest,
)
from archiver.api.errors import (
    ApiError,
    ApiStatusError,
    AuthenticationError,
    BadRequestError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from archiver.config import TOKEN_SETTING, Settings, is_loopback_host
from archiver.text import printable
from archiver.timeutil import Resolution, floor, next_start

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
Clock = Callable[[], float]
Now = Callable[[], datetime]


class RateLimiter:
    """Spaces calls at least `1/rate` seconds apart, across threads."""

    def __init__(self, rate: float, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def acquire(self) -> None:
        """Block until this caller's slot comes."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a failed call."""

    max_attempts: int = 5
    backoff_base: float = 0.5
    max_backoff: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: Callable[[], float]) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_backoff)
        exponential = self.backoff_base * 2.0 ** (attempt - 1)
        return min(exponential * (0.5 + rng()), self.max_backoff)


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one request: rows and the time they were read, or the error."""

    request: ApiRequest
    rows: list[models.Row]
    fetched_at: datetime
    error: ApiError | None = None
    # Streams whose part of an otherwise good answer was broken: name -> reason.
    failed: dict[str, str] = field(default_factory=dict)
    # The vendor's clock minus ours, from the answer's `Date` header (None: no usable header).
    skew: timedelta | None = None


@dataclass(frozen=True)
class _Answer:
    """A read answer: status, headers and the whole body."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


VENDOR_TEXT_LIMIT = 300
MESSAGE_LIMIT = 2000
# Within this, the host clock is trusted (the `Date` header has whole seconds only).
CLOCK_TOLERANCE = timedelta(seconds=2)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP `Date` header as aware UTC, or None if absent or unreadable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def valid_token(token: str) -> bool:
    """Printable ASCII without spaces: all an HTTP header can carry."""
    return bool(token) and all("!" <= c <= "~" for c in token)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        when = parse_http_date(value)
        if when is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    # `nan` or a negative wait would disable the backoff; the exponential one applies instead.
    # `inf` stays: the policy caps it.
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


def _vendor_words(response: _Answer) -> str:
    """The vendor's own words from a `fail`/`error` body, or the reason phrase."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return response.reason_phrase or f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return response.reason_phrase
    data = body.get("data")
    parts: list[str] = []
    if isinstance(data, dict):
        if isinstance(data.get("message"), str):
            parts.append(data["message"])
        errors = data.get("errors")
        if isinstance(errors, dict):
            for name, messages in errors.items():
                text = (
                    "; ".join(str(m) for m in messages) if isinstance(messages, list) else messages
                )
                parts.append(f"{name}: {text}")
    if not parts and isinstance(body.get("message"), str):
        parts.append(body["message"])
    return " - ".join(parts) or response.reason_phrase


class AnalyticsClient:
    """Calls the vendor API. Thread-safe; use as a context manager or call `close()`."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_requests_per_second: float = 20.0,
        concurrency: int = 8,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        now: Now | None = None,
        rng: Callable[[], float] = random.random,
        on_response: Callable[[str, str], None] | None = None,
        max_response_bytes: int = 128 * 1024 * 1024,
        deadline_seconds: float = 300.0,
    ) -> None:
        host = httpx.URL(base_url).host
        loopback = is_loopback_host(host)
        if not base_url.startswith("https://") and not loopback:
            raise ApiError(f"refusing to send the API token over plain http to {host}")
        if not valid_token(token):
            # Never echo it: a header cannot carry it, and it is still a secret.
            raise ApiError(
                f"{TOKEN_SETTING} holds characters an HTTP header cannot carry "
                "(spaces, line breaks, non-ASCII): paste the API secret alone"
            )
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.max_response_bytes = max_response_bytes
        self.deadline_seconds = deadline_seconds
        self._token = token
        self._cancelled = threading.Event()
        # The default sleep wakes up at once when the client is cancelled (shutdown).
        self._sleep = sleep if sleep is not time.sleep else self._interruptible_sleep
        self._on_response = on_response
        self._now = now or (lambda: datetime.now(UTC))
        self._rng = rng
        self._limiter = RateLimiter(max_requests_per_second)
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._sockets_lock = threading.Lock()
        self._skew: timedelta | None = None
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"archiver/{__version__}",
            },
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            # Proxies from the environment: never for loopback (the token would cross a plain
            # http hop); for https, httpx uses only HTTPS_PROXY/ALL_PROXY and tunnels through
            # them, so the token stays inside TLS.
            trust_env=not loopback,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AnalyticsClient:
        """A client configured by the settings (the token is required)."""
        options: dict[str, Any] = {
            "base_url": settings.api_base_url,
            "token": settings.require_token(),
            "timeout": settings.request_timeout_seconds,
            "retry": RetryPolicy(
                settings.max_attempts, settings.backoff_base_seconds, settings.max_backoff_seconds
            ),
            "max_requests_per_second": settings.max_requests_per_second,
            "concurrency": settings.concurrency,
            "max_response_bytes": settings.max_response_bytes,
            "deadline_seconds": settings.request_deadline_seconds,
        }
        if settings.now is not None:
            frozen = settings.now
            options["now"] = lambda: frozen
        options.update(overrides)
        return cls(**options)

    def __repr__(self) -> str:
        return f"AnalyticsClient(base_url={self.base_url!r})"

    def __enter__(self) -> AnalyticsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def cancel(self) -> None:
        """Stop retrying and fetching: used when the service shuts down.

        Requests in flight are cut at once (their sockets are shut down), whatever the
        vendor is doing: a stalled or dripping answer cannot hold the shutdown.
        """
        self._cancelled.set()
        with self._sockets_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    @property
    def cancelled(self) -> bool:
        """True once `cancel()` was called."""
        return self._cancelled.is_set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._cancelled.wait(seconds)

    def _count(self, path: str, status: str) -> None:
        if self._on_response is not None:
            self._on_response(path.removeprefix("/api/"), status)

    def _trace(self, event: str, info: dict[str, Any]) -> socket.socket | None:
        # httpcore reports each new connection: remember its socket so cancel() can cut it.
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return None
        sock = _socket_of(info.get("return_value"))
        if sock is not None:
            with self._sockets_lock:
                self._sockets.add(sock)
        return sock

    def scrub(self, text: str, limit: int = MESSAGE_LIMIT) -> str:
        """`text` without the token, control characters escaped, bounded."""
        if self._token:
            text = text.replace(self._token, "[redacted]")
        return printable(text, limit)

    def _clean(self, error: ApiError) -> ApiError:
        # Whatever the vendor echoed (the token included) stays out of messages, logs and
        # the database: every ApiError leaving the client passes here.
        error.args = (self.scrub(str(error)),)
        return error

    def get(
        self, path: str, params: list[tuple[str, str]], *, what: str, body: TypeAdapter[Any]
    ) -> Any:
        """GET `path` with retries; the typed `data` of the success envelope."""
        data, _ = self.get_dated(path, params, what=what, body=body)
        return data

    def get_dated(
        self, path: str, params: list[tuple[str, str]], *, what: str, body: TypeAdapter[Any]
    ) -> tuple[Any, datetime | None]:
        """As `get`, plus the vendor's `Date` header of the answer (None if unusable)."""
        try:
            return self._get(path, params, what=what, body=body)
        except ApiError as exc:
            raise self._clean(exc) from None

    def _get(
        self, path: str, params: list[tuple[str, str]], *, what: str, body: TypeAdapter[Any]
    ) -> tuple[Any, datetime | None]:
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            error: ApiError
            if self._cancelled.is_set():
                raise TransportError(f"{what}: cancelled (shutting down)")
            try:
                self._limiter.acquire()
                answer = self._exchange(path, params, what)
                self._count(path, str(answer.status_code))
                if answer.status_code == 200:
                    vendor_time = parse_http_date(answer.headers.get("Date"))
                    return models.decode(answer.content, body, endpoint=what), vendor_time
                error = self._status_error(answer, what)
                if not isinstance(error, RateLimitedError | ServerError):
                    raise error
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            except httpx.TimeoutException as exc:
                self._count(path, "timeout")
                error = TransportError(f"{what}: timed out ({type(exc).__name__})")
            except httpx.TransportError as exc:
                self._count(path, "transport_error")
                if self._cancelled.is_set():
                    raise TransportError(f"{what}: cancelled (shutting down)") from None
                error = TransportError(f"{what}: {type(exc).__name__}: {exc}")
            except ResponseFormatError as exc:
                if not exc.truncated:
                    raise
                error = exc
            if attempt >= self.retry.max_attempts or self._cancelled.is_set():
                raise error
            delay = self.retry.delay(attempt, retry_after, self._rng)
            log.warning(
                "%s; retrying in %.1fs (attempt %d of %d)",
                self.scrub(str(error)),
                delay,
                attempt + 1,
                self.retry.max_attempts,
            )
            self._sleep(delay)

    def _exchange(self, path: str, params: list[tuple[str, str]], what: str) -> _Answer:
        """One request, its body read within the size cap and the overall deadline."""
        expired = threading.Event()
        current: list[socket.socket] = []  # this request's socket, once known

        def trace(event: str, info: dict[str, Any]) -> None:
            sock = self._trace(event, info)
            if sock is not None:
                current.append(sock)

        def expire() -> None:
            expired.set()
            for sock in current:
                _shutdown(sock)

        timer = threading.Timer(self.deadline_seconds, expire)
        timer.daemon = True
        timer.start()
        try:
            with self._http.stream(
                "GET",
                path,
                params=httpx.QueryParams(tuple(params)),
                extensions={"trace": trace},
            ) as response:
                sock = _socket_of(response.extensions.get("network_stream"))
                if sock is not None:
                    current.append(sock)
                    if expired.is_set():
                        _shutdown(sock)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise self._too_large(what)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise self._too_large(what)
                    if expired.is_set():
                        break
                    chunks.append(chunk)
                if not expired.is_set():
                    return _Answer(
                        response.status_code,
                        response.reason_phrase,
                        response.headers,
                        b"".join(chunks),
                    )
        except httpx.TransportError:
            if not expired.is_set():
                raise
        finally:
            timer.cancel()
        raise TransportError(
            f"{what}: no complete answer within the overall deadline of "
            f"{self.deadline_seconds:g}s (ARCHIVER_REQUEST_DEADLINE_SECONDS)"
        )

    def _too_large(self, what: str) -> ResponseFormatError:
        return ResponseFormatError(
            f"{what}: answer larger than {self.max_response_bytes} bytes "
            "(ARCHIVER_MAX_RESPONSE_BYTES)"
        )

    def _status_error(self, response: _Answer, what: str) -> ApiStatusError:
        status = response.status_code
        # The vendor's words, without the token (some services echo the header), bounded.
        message = self.scrub(_vendor_words(response), VENDOR_TEXT_LIMIT)
        if status in (401, 403):
            return AuthenticationError(
                f"{what}: the vendor refused the API secret ({status} {message}): "
                f"check {TOKEN_SETTING}",
                status_code=status,
            )
        if status == 400:
            return BadRequestError(f"{what}: rejected by the vendor: {message}", status_code=400)
        if status == 429:
            return RateLimitedError(f"{what}: rate limited (429)", status_code=429)
        if status >= 500:
            return ServerError(f"{what}: server error {status}: {message}", status_code=status)
        return ApiStatusError(f"{what}: HTTP {status}: {message}", status_code=status)

    def judge_time(self, vendor_time: datetime | None) -> tuple[datetime, timedelta | None]:
        """The time an answer was read, by the vendor's clock when ours disagrees; the skew.

        A fast host clock must never make a partial bucket final, nor move a watermark past
        the vendor's now; a slow one must not make the archiver ask for purged buckets.
        """
        host = self._now()
        if vendor_time is None:
            return host, None
        skew = vendor_time - host
        self._skew = skew
        if abs(skew) <= CLOCK_TOLERANCE:
            return host, skew
        return vendor_time, skew

    def probe_clock(self) -> None:
        """Measure the vendor's clock with one small request (this month's account total).

        On failure `skew` stays unknown and the requests of the cycle measure it each.
        """
        month = floor(self._now(), Resolution.MONTH)
        probe = ApiRequest(
            ACCOUNT_SERIES, Resolution.MONTH, month, next_start(month, Resolution.MONTH)
        )
        try:
            _, vendor_time = self.get_dated(
                probe.endpoint.path, probe.params(), what="clock check", body=probe.endpoint.body
            )
        except ApiError as exc:
            log.warning("could not read the vendor's clock: %s", exc)
            return
        self.judge_time(vendor_time)

    @property
    def skew(self) -> timedelta | None:
        """The vendor's clock minus ours, as last measured (None: never)."""
        return self._skew

    def fetch(self, request: ApiRequest) -> FetchResult:
        """Fetch and parse one request; raises ApiError."""
        what = request.describe()
        data, vendor_time = self.get_dated(
            request.endpoint.path, request.params(), what=what, body=request.endpoint.body
        )
        fetched_at, skew = self.judge_time(vendor_time)
        try:
            parsed = request.endpoint.parser(data, request.window(), what)
        except ApiError as exc:
            raise self._clean(exc) from None
        failed = {name: self.scrub(reason) for name, reason in parsed.failed.items()}
        return FetchResult(request, parsed.rows, fetched_at, failed=failed, skew=skew)

    def _fetch_captured(self, request: ApiRequest) -> FetchResult:
        try:
            return self.fetch(request)
        except AuthenticationError:
            raise
        except ApiError as exc:
            return FetchResult(request, [], self._now(), exc)

    def fetch_all(self, requests: Iterable[ApiRequest]) -> Generator[FetchResult, None, None]:
        """Fetch requests `concurrency` at a time, yielding results as they complete.

        At most `concurrency + 2` responses are in memory at once; failures come back as
        results with `error` set, except AuthenticationError, which stops everything. If the
        caller stops early (shutdown, a fatal error), the client is cancelled: what is in
        flight ends at once instead of retrying on in the background.
        """
        pending: set[Future[FetchResult]] = set()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="fetch")
        finished = False
        try:
            for request in requests:
                if self._cancelled.is_set():
                    break
                pending.add(pool.submit(self._fetch_captured, request))
                if len(pending) >= self.concurrency + 2:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
            finished = True
        finally:
            if not finished:
                self.cancel()
            # On an early exit queued requests are dropped and running ones are not waited
            # for: they fail fast once the client is cancelled.
            pool.shutdown(wait=finished, cancel_futures=True)

    def discover_streams(self, *, page_size: int = 100, max_pages: int = 1000) -> Iterator[str]:
        """Names from `monitoring/streams` (streams created within the last hour), all pages."""
        page = 1
        while page <= max_pages:
            what = f"monitoring/streams page {page}"
            params = [("page", str(page)), ("itemsOnPage", str(page_size))]
            listing: models.StreamPage
            listing, vendor_time = self.get_dated(
                MONITORING_STREAMS_PATH, params, what=what, body=models.STREAM_PAGE_BODY
            )
            self.judge_time(vendor_time)
            items = listing.data or []
            for item in items:
                yield item.streamName
            total_pages = listing.pagination.totalPages if listing.pagination else None
            if not items or (total_pages is not None and page >= total_pages):
                return
            page += 1

    def publish_tokens(
        self, *, page_size: int = 100, max_pages: int = 1000
    ) -> list[models.PublishToken]:
        """Every publish token of the account from `publish_token/list`, all pages."""
        tokens: list[models.PublishToken] = []
        for page in range(1, max_pages + 1):
            what = f"publish_token/list page {page}"
            params = [("page", str(page)), ("itemsOnPage", str(page_size))]
            items: list[models.PublishToken] = self.get(
                PUBLISH_TOKENS_PATH, params, what=what, body=models.PUBLISH_TOKEN_PAGE_BODY
            )
            if not items:
                return tokens
            tokens.extend(items)
        raise ResponseFormatError(
            f"publish_token/list: still not at the end after {max_pages} pages"
        )


def _socket_of(stream: Any) -> socket.socket | None:
    if stream is None:
        return None
    try:
        sock = stream.get_extra_info("socket")
    except Exception:  # a transport without sockets (tests' mock transports)
        return None
    return sock if isinstance(sock, socket.socket) else None


def _shutdown(sock: socket.socket) -> None:
    # shutdown(), unlike close(), wakes a thread blocked reading the socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
