"""The one HTTP client: auth, retries with backoff, a rate cap, bounded concurrency, errors.

Every httpx exception is translated into the `ApiError` tree here and nowhere else.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import TypeAdapter

from archiver import __version__
from archiver.api import models
from archiver.api.endpoints import MONITORING_STREAMS_PATH, PUBLISH_TOKENS_PATH, ApiRequest
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
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        exponential = self.backoff_base * 2.0 ** (attempt - 1)
        return min(exponential * (0.5 + rng()), self.max_backoff)


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one request: rows and the time they were read, or the error."""

    request: ApiRequest
    rows: list[models.Row]
    fetched_at: datetime
    error: ApiError | None = None


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    seconds: float = (when - datetime.now(UTC)).total_seconds()
    return seconds


def _vendor_message(response: httpx.Response) -> str:
    """The vendor's own words from a `fail`/`error` body, or the reason phrase."""
    try:
        body = response.json()
    except ValueError:
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
    ) -> None:
        host = httpx.URL(base_url).host
        if not base_url.startswith("https://") and not is_loopback_host(host):
            raise ApiError(f"refusing to send the API token over plain http to {host}")
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self._cancelled = threading.Event()
        # The default sleep wakes up at once when the client is cancelled (shutdown).
        self._sleep = sleep if sleep is not time.sleep else self._interruptible_sleep
        self._on_response = on_response
        self._now = now or (lambda: datetime.now(UTC))
        self._rng = rng
        self._limiter = RateLimiter(max_requests_per_second)
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
        """Stop retrying and fetching: used when the service shuts down."""
        self._cancelled.set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._cancelled.wait(seconds)

    def _count(self, path: str, status: str) -> None:
        if self._on_response is not None:
            self._on_response(path.removeprefix("/api/"), status)

    def get(
        self, path: str, params: list[tuple[str, str]], *, what: str, body: TypeAdapter[Any]
    ) -> Any:
        """GET `path` with retries; the typed `data` of the success envelope."""
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            error: ApiError
            if self._cancelled.is_set():
                raise TransportError(f"{what}: cancelled (shutting down)")
            try:
                self._limiter.acquire()
                response = self._http.get(path, params=httpx.QueryParams(tuple(params)))
                self._count(path, str(response.status_code))
                if response.status_code == 200:
                    return models.decode(response.content, body, endpoint=what)
                error = self._status_error(response, what)
                if not isinstance(error, RateLimitedError | ServerError):
                    raise error
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except httpx.TimeoutException as exc:
                self._count(path, "timeout")
                error = TransportError(f"{what}: timed out ({type(exc).__name__})")
            except httpx.TransportError as exc:
                self._count(path, "transport_error")
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
                error,
                delay,
                attempt + 1,
                self.retry.max_attempts,
            )
            self._sleep(delay)

    @staticmethod
    def _status_error(response: httpx.Response, what: str) -> ApiStatusError:
        status = response.status_code
        message = _vendor_message(response)
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

    def fetch(self, request: ApiRequest) -> FetchResult:
        """Fetch and parse one request; raises ApiError."""
        what = request.describe()
        data = self.get(
            request.endpoint.path, request.params(), what=what, body=request.endpoint.body
        )
        fetched_at = self._now()
        rows = request.endpoint.parser(data, request.window(), what)
        return FetchResult(request, rows, fetched_at)

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
        results with `error` set, except AuthenticationError, which stops everything.
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
            # On an early exit (shutdown, fatal error) queued requests are dropped and
            # running ones are not waited for: they fail fast once the client is cancelled.
            pool.shutdown(wait=finished, cancel_futures=True)

    def discover_streams(self, *, page_size: int = 100, max_pages: int = 1000) -> Iterator[str]:
        """Names from `monitoring/streams` (streams created within the last hour), all pages."""
        page = 1
        while page <= max_pages:
            what = f"monitoring/streams page {page}"
            params = [("page", str(page)), ("itemsOnPage", str(page_size))]
            listing: models.StreamPage = self.get(
                MONITORING_STREAMS_PATH, params, what=what, body=models.STREAM_PAGE_BODY
            )
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
