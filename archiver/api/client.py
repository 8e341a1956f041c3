"""The one API client: retried calls, the vendor's clock, parsed fetches, bounded concurrency."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import TypeAdapter

from archiver.api import listings
from archiver.api.clock import Reading, VendorClock
from archiver.api.decode import decode
from archiver.api.endpoints import schema_of
from archiver.api.errors import ApiError, AuthenticationError, ResponseFormatError, TransportError
from archiver.api.pool import run_concurrently
from archiver.api.retry import RetryPolicy, parse_http_date, parse_retry_after, retryable
from archiver.api.series import Row
from archiver.api.translate import MESSAGE_LIMIT, Scrubber, status_error
from archiver.api.transport import Connection, Sleep
from archiver.config import Settings
from archiver.timeutil import Resolution, floor, next_start
from archiver.vocabulary import (
    ACCOUNT_SERIES,
    MONITORING_STREAMS_PATH,
    PUBLISH_TOKENS_PATH,
    ApiRequest,
)

log = logging.getLogger(__name__)

Now = Callable[[], datetime]


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one request: rows and the time they were read, or the error."""

    request: ApiRequest
    rows: list[Row]
    fetched_at: datetime
    error: ApiError | None = None
    # Streams whose part of an otherwise good answer was broken: name -> reason.
    failed: dict[str, str] = field(default_factory=dict)
    # The answer's `Date` header and our clock around it (None: no answer).
    reading: Reading | None = None


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
        self.base_url = base_url.rstrip("/")
        self._connection = Connection(
            base_url=self.base_url,
            token=token,
            timeout=timeout,
            max_requests_per_second=max_requests_per_second,
            concurrency=concurrency,
            transport=transport,
            max_response_bytes=max_response_bytes,
            deadline_seconds=deadline_seconds,
            on_response=on_response,
        )
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.scrub = Scrubber(token)
        self._cancelled = self._connection.cancelled
        # The default sleep wakes up at once when the client is cancelled (shutdown).
        self._sleep = sleep if sleep is not time.sleep else self._interruptible_sleep
        self._now = now or (lambda: datetime.now(UTC))
        self._clock = VendorClock(self._now)
        self._rng = rng

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
        self._connection.close()

    def cancel(self) -> None:
        """Stop retrying and fetching: used when the service shuts down.

        Requests in flight are cut at once (their sockets are shut down), whatever the
        vendor is doing: a stalled or dripping answer cannot hold the shutdown.
        """
        self._connection.cancel()

    @property
    def cancelled(self) -> bool:
        """True once `cancel()` was called."""
        return self._cancelled.is_set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._cancelled.wait(seconds)

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
            # Whatever the vendor echoed (the token included) stays out of messages, logs and
            # the database: every ApiError leaving the client passes here.
            raise self.scrub.clean(exc) from None

    def _get(
        self, path: str, params: list[tuple[str, str]], *, what: str, body: TypeAdapter[Any]
    ) -> tuple[Any, datetime | None]:
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            error: ApiError
            if self._cancelled.is_set():
                raise TransportError(f"{what}: cancelled (shutting down)", transient=False)
            try:
                answer = self._connection.exchange(path, params, what)
                if answer.status_code == 200:
                    vendor_time = parse_http_date(answer.headers.get("Date"))
                    return decode(answer.content, body, endpoint=what), vendor_time
                error = status_error(answer, what, self.scrub)
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            except ApiError as exc:
                error = exc
            if not retryable(error) or attempt >= self.retry.max_attempts or self.cancelled:
                raise error
            delay = self.retry.delay(attempt, retry_after, self._rng)
            log.warning(
                "%s; retrying in %.1fs (attempt %d of %d)",
                self.scrub(str(error), MESSAGE_LIMIT),
                delay,
                attempt + 1,
                self.retry.max_attempts,
            )
            self._sleep(delay)

    def probe_clock(self) -> None:
        """Measure the vendor's clock with one small request (this month's account total).

        On failure no reading is taken: the cycle's clock stays unknown (nothing settles).
        """
        month = floor(self._now(), Resolution.MONTH)
        probe = ApiRequest(
            ACCOUNT_SERIES, Resolution.MONTH, month, next_start(month, Resolution.MONTH)
        )
        body = schema_of(probe.endpoint).body
        sent = self._now()
        try:
            _, vendor_time = self.get_dated(
                probe.endpoint.path, probe.params(), what="clock check", body=body
            )
        except ApiError as exc:
            log.warning("could not read the vendor's clock: %s", exc)
            return
        self._clock.read(vendor_time, sent)

    def take_readings(self) -> list[Reading]:
        """Every answer's reading of the vendor's clock since the last call (then forgotten)."""
        return self._clock.take_readings()

    def fetch(self, request: ApiRequest) -> FetchResult:
        """Fetch and parse one request; raises ApiError."""
        what = request.describe()
        schema = schema_of(request.endpoint)
        sent = self._now()
        data, vendor_time = self.get_dated(
            request.endpoint.path, request.params(), what=what, body=schema.body
        )
        reading = self._clock.read(vendor_time, sent)
        try:
            parsed = schema.parser(data, request.window(), what)
        except ApiError as exc:
            raise self.scrub.clean(exc) from None
        failed = {name: self.scrub(reason) for name, reason in parsed.failed.items()}
        return FetchResult(request, parsed.rows, reading.fetched_at, failed=failed, reading=reading)

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
        return run_concurrently(
            self._fetch_captured,
            requests,
            concurrency=self.concurrency,
            stopped=self._cancelled.is_set,
            stop=self.cancel,
        )

    def discover_streams(self, *, page_size: int = 100, max_pages: int = 1000) -> Iterator[str]:
        """Names from `monitoring/streams` (streams created within the last hour), all pages."""
        page = 1
        while page <= max_pages:
            what = f"monitoring/streams page {page}"
            params = [("page", str(page)), ("itemsOnPage", str(page_size))]
            listing: listings.StreamPage
            sent = self._now()
            listing, vendor_time = self.get_dated(
                MONITORING_STREAMS_PATH, params, what=what, body=listings.STREAM_PAGE_BODY
            )
            self._clock.read(vendor_time, sent)
            items = listing.data or []
            for item in items:
                yield item.streamName
            total_pages = listing.pagination.totalPages if listing.pagination else None
            if not items or (total_pages is not None and page >= total_pages):
                return
            page += 1

    def publish_tokens(
        self, *, page_size: int = 100, max_pages: int = 1000
    ) -> list[listings.PublishToken]:
        """Every publish token of the account from `publish_token/list`, all pages."""
        tokens: list[listings.PublishToken] = []
        for page in range(1, max_pages + 1):
            what = f"publish_token/list page {page}"
            params = [("page", str(page)), ("itemsOnPage", str(page_size))]
            items: list[listings.PublishToken] = self.get(
                PUBLISH_TOKENS_PATH, params, what=what, body=listings.PUBLISH_TOKEN_PAGE_BODY
            )
            if not items:
                return tokens
            tokens.extend(items)
        raise ResponseFormatError(
            f"publish_token/list: still not at the end after {max_pages} pages"
        )
