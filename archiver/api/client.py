"""The one API client: retried calls, the vendor's clock, parsed fetches, bounded concurrency."""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import TypeAdapter

from archiver.api import listings
from archiver.api.access import Access
from archiver.api.clock import VendorClock
from archiver.api.decode import decode
from archiver.api.endpoints import schema_of
from archiver.api.errors import CYCLE_ENDING, ApiError, PermissionDeniedError, TransportError
from archiver.api.options import ClientOptions
from archiver.api.pool import run_batched
from archiver.api.result import FetchResult
from archiver.api.retry import RetryPolicy, parse_http_date, parse_retry_after, retryable
from archiver.api.translate import MESSAGE_LIMIT, Scrubber, status_error
from archiver.api.transport import Connection, Sleep
from archiver.datasets import ACCOUNT_SERIES
from archiver.rules.reading import Reading
from archiver.timeutil import Resolution, floor, next_start
from archiver.vocabulary import ApiRequest

__all__ = ["AnalyticsClient", "FetchResult"]

log = logging.getLogger(__name__)

Now = Callable[[], datetime]


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
        reached: threading.Event | None = None,
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
            reached=reached,
        )
        self.access = Access()
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
    def from_options(cls, options: ClientOptions, **overrides: Any) -> AnalyticsClient:
        """A client configured by plain `options` (the settings make them); `overrides` are
        keyword arguments of the constructor (a test's transport, a hook, a sleep)."""
        arguments: dict[str, Any] = {
            "base_url": options.base_url,
            "token": options.token,
            "timeout": options.timeout,
            "retry": RetryPolicy(
                options.max_attempts, options.backoff_base_seconds, options.max_backoff_seconds
            ),
            "max_requests_per_second": options.max_requests_per_second,
            "concurrency": options.concurrency,
            "max_response_bytes": options.max_response_bytes,
            "deadline_seconds": options.deadline_seconds,
        }
        if options.now is not None:
            frozen = options.now
            arguments["now"] = lambda: frozen
        arguments.update(overrides)
        return cls(**arguments)

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
        return self.call(
            path, params, what=what, decoder=lambda content: decode(content, body, endpoint=what)
        )

    def call(
        self,
        path: str,
        params: list[tuple[str, str]],
        *,
        what: str,
        decoder: Callable[[bytes], Any],
        json_body: bytes | None = None,
    ) -> tuple[Any, datetime | None]:
        """One request with retries (a POST of `json_body` when given): the 200 answer's body
        through `decoder`, and its `Date`.

        Whatever the vendor echoed (the token included) stays out of messages, logs and the
        database: every ApiError leaving the client is scrubbed here.
        """
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            error: ApiError
            if self._cancelled.is_set():
                cancelled = TransportError(f"{what}: cancelled (shutting down)", transient=False)
                raise self.scrub.clean(cancelled)
            try:
                self.access.asked(path)
                answer = self._connection.exchange(path, params, what, json_body)
                self.access.answered(path, answer.status_code)
                if answer.status_code == 200:
                    vendor_time = parse_http_date(answer.headers.get("Date"))
                    return decoder(answer.content), vendor_time
                error = status_error(answer, what, self.scrub, path)
                retry_after = parse_retry_after(answer.headers.get("Retry-After"), self._now())
            except ApiError as exc:
                error = exc
            if not retryable(error) or attempt >= self.retry.max_attempts or self.cancelled:
                raise self.scrub.clean(error) from None
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
        except CYCLE_ENDING:
            raise
        except ApiError as exc:
            log.warning("could not read the vendor's clock: %s", exc)
            return
        self._clock.read(vendor_time, sent)

    def clock_now(self) -> datetime:
        """Our clock, as the client reads it (to note when a request was sent)."""
        return self._now()

    def note_reading(self, vendor_time: datetime | None, sent: datetime) -> Reading:
        """Keep an answer's `Date` (read by a caller of `get_dated`) among the readings."""
        return self._clock.read(vendor_time, sent)

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
        strangers = [self.scrub(name, 140) for name in parsed.strangers]
        return FetchResult(
            request, parsed.rows, reading.fetched_at, None, failed, strangers, reading
        )

    def _fetch_captured(self, request: ApiRequest, planned: frozenset[str]) -> FetchResult:
        try:
            return self.fetch(request)
        except CYCLE_ENDING:
            raise
        except PermissionDeniedError as exc:
            # One endpoint's 403 fails its requests; every planned endpoint's, the secret.
            refused = self.access.refused_everywhere(planned)
            if refused is not None:
                raise refused from None
            return FetchResult(request, [], self._now(), exc)
        except ApiError as exc:
            return FetchResult(request, [], self._now(), exc)

    def fetch_all(self, requests: Iterable[ApiRequest]) -> Generator[FetchResult, None, None]:
        """Fetch requests `concurrency` at a time, yielding results as they complete (at most
        `concurrency + 3` in memory). Failures come back as results with `error` set, except a
        refused secret (401, or 403 from every endpoint) and an unreachable API URL, which stop
        everything. If the caller stops early (shutdown, a fatal error), the client is
        cancelled: what is in flight ends at once instead of retrying on in the background."""
        with closing(self.fetch_batches(requests, 1)) as batches:
            for batch in batches:
                yield from batch

    def fetch_batches(
        self, requests: Iterable[ApiRequest], most: int
    ) -> Generator[list[FetchResult], None, None]:
        """As `fetch_all`, yielding every result ready at once (at most `most` a list), the next
        requests on their way meanwhile (`concurrency + 2 + most` responses held at most)."""
        listed = list(requests)
        planned = frozenset(request.endpoint.path for request in listed)
        work = functools.partial(self._fetch_captured, planned=planned)
        stopped, stop = self._cancelled.is_set, self.cancel
        return run_batched(work, listed, self.concurrency, most, stopped=stopped, stop=stop)

    def discover_streams(self, *, page_size: int = 100, max_pages: int = 1000) -> Iterator[str]:
        """Names from `monitoring/streams` (streams created within the last hour), all pages."""
        return listings.stream_names(self, page_size, max_pages)

    def publish_tokens(
        self, *, page_size: int = 100, max_pages: int = 1000
    ) -> list[listings.PublishToken]:
        """Every publish token of the account from `publish_token/list`, all pages."""
        return listings.publish_tokens(self, page_size, max_pages)
