"""Vendor failures as `ApiError`s: httpx exceptions, status codes with the vendor's words, scrubbed.

Every httpx exception and every error status becomes part of the `ApiError` tree here and
nowhere else; every message leaving the client passes through `Scrubber`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from archiver.api.errors import (
    ApiError,
    ApiStatusError,
    AuthenticationError,
    BadRequestError,
    PermissionDeniedError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
    TransportError,
    UnreachableError,
)
from archiver.api.options import BASE_URL_SETTING, TOKEN_SETTING
from archiver.text import printable

VENDOR_TEXT_LIMIT = 300
MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class Answer:
    """A read answer: status, headers and the whole body."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        """The body as JSON (raises ValueError when it is not)."""
        return json.loads(self.content)


@dataclass(frozen=True, repr=False)
class Scrubber:
    """Takes the API token out of text, escapes control characters, bounds the length."""

    token: str

    def __repr__(self) -> str:
        return "Scrubber()"

    def __call__(self, text: str, limit: int = MESSAGE_LIMIT) -> str:
        if self.token:
            text = text.replace(self.token, "[redacted]")
        return printable(text, limit)

    def clean(self, error: ApiError) -> ApiError:
        """`error` with its message scrubbed (the vendor may echo the token back)."""
        error.args = (self(str(error)),)
        return error


def transport_error(
    exc: httpx.TransportError, what: str, *, cancelled: bool, first: bool, base_url: httpx.URL
) -> TransportError:
    """A timeout or a connection failure; not worth retrying once the client is cancelled.

    Before the vendor has answered once in this run (`first`), a refused connection or a name
    that does not resolve is a wrong API URL, not a passing outage: an `UnreachableError`
    (one-shot commands end with it; `run` logs it and tries again next cycle).
    """
    if isinstance(exc, httpx.TimeoutException):
        return TransportError(f"{what}: timed out ({type(exc).__name__})")
    if cancelled:
        return TransportError(f"{what}: cancelled (shutting down)", transient=False)
    reason = _unreachable(exc, base_url.host) if first else None
    if reason is not None:
        # Userinfo (user:password@), a query or a fragment (a key may hide in either) never
        # leaves here; the token is in a header, never the URL.
        url = base_url.copy_with(username=None, password=None, query=None, fragment=None)
        return UnreachableError(
            f"cannot reach the vendor API at {url} ({reason}): check {BASE_URL_SETTING}"
        )
    return TransportError(f"{what}: {type(exc).__name__}: {exc}")


def _unreachable(exc: BaseException, host: str) -> str | None:
    """Why no server can be at the URL: a refused connection or an unknown name (else None)."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> OSError; a bounded walk of the chain
        if seen is None:
            return None
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            if seen.errno == socket.EAI_AGAIN:
                return None  # "temporary failure in name resolution": the resolver, not the URL
            return f"the name {host[:100]!r} does not resolve"
        seen = seen.__cause__ or seen.__context__
    return None


def decoding_error(exc: httpx.DecodingError, what: str, headers: httpx.Headers) -> ApiError:
    """A body its `Content-Encoding` does not describe (a misconfigured proxy or CDN): refused.

    Not retried: the same sender labels the same body the same way again.
    """
    encoding = printable(headers.get("Content-Encoding", ""), 40)
    return ResponseFormatError(
        f"{what}: the body cannot be decoded as its Content-Encoding {encoding!r} says "
        f"({printable(str(exc), 120)})"
    )


def _vendor_words(response: Answer) -> str:
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


def status_error(
    response: Answer, what: str, scrub: Callable[[str, int], str], path: str = ""
) -> ApiStatusError:
    """The error an HTTP error status stands for, with the vendor's (scrubbed) words.

    401 is a refused secret; 403 refuses only the endpoint at `path` (its permission).
    """
    status = response.status_code
    # The vendor's words, without the token (some services echo the header), bounded.
    message = scrub(_vendor_words(response), VENDOR_TEXT_LIMIT)
    if status == 401:
        return AuthenticationError(
            f"{what}: the vendor refused the API secret ({status} {message}): "
            f"check {TOKEN_SETTING}",
            status_code=status,
        )
    if status == 403:
        return PermissionDeniedError(
            f"{what}: the API secret lacks the permission to read {path or what} "
            f"(403 {message}): grant it in the dashboard (Settings, Security, API Secrets); "
            "the other endpoints go on",
            status_code=403,
        )
    if status == 400:
        return BadRequestError(f"{what}: rejected by the vendor: {message}", status_code=400)
    if status == 429:
        return RateLimitedError(f"{what}: rate limited (429)", status_code=429)
    if status >= 500:
        return ServerError(f"{what}: server error {status}: {message}", status_code=status)
    return ApiStatusError(f"{what}: HTTP {status}: {message}", status_code=status)
