"""When a failed call is tried again (`retryable`), and how long to wait first (`RetryPolicy`)."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from archiver.api.errors import (
    ApiError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
    TransportError,
)


def retryable(error: ApiError) -> bool:
    """Whether another attempt may succeed; the one place this is decided.

    Timeouts, dropped connections, 429, 5xx and bodies cut short are tried again; a cancelled
    request, one past the overall deadline, a refused secret or parameter, a body of the
    wrong shape or size are not.
    """
    if isinstance(error, TransportError):
        return error.transient
    if isinstance(error, ResponseFormatError):
        return error.truncated
    return isinstance(error, RateLimitedError | ServerError)


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


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date header (`Date`, `Retry-After`) as aware UTC, or None if absent or unreadable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date (seconds from `now`)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        when = parse_http_date(value)
        if when is None:
            return None
        seconds = (when - now).total_seconds()
    # `nan` or a negative wait would disable the backoff; the exponential one applies instead.
    # `inf` stays: the policy caps it.
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds
