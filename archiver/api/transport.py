"""One connection to the vendor: headers, proxies, a rate cap, answers bounded in size and time.

Cancelling it cuts the requests in flight at once (their sockets are shut down).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import certifi
import httpx

from archiver import __version__
from archiver.api.errors import ApiError, ResponseFormatError, TransportError
from archiver.api.options import TOKEN_SETTING, is_loopback_host
from archiver.api.translate import Answer, decoding_error, transport_error

Sleep = Callable[[float], None]
Clock = Callable[[], float]


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


def _tls_context(trust_env: bool) -> ssl.SSLContext:
    """The CA bundle, loaded again only when where it comes from or the file itself changes:
    loading it for every cycle's client took longer than the cycle's requests."""
    sources = [certifi.where()]
    if trust_env:  # httpx reads these two, as OpenSSL does
        sources += [os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", "")]
    return _load_tls_context(trust_env, tuple((path, _changed_at(path)) for path in sources))


def _changed_at(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns if path else None
    except OSError:
        return None


@functools.lru_cache(maxsize=4)
def _load_tls_context(
    trust_env: bool, sources: tuple[tuple[str, int | None], ...]
) -> ssl.SSLContext:
    del sources  # the cache key: a rotated bundle or a new SSL_CERT_FILE loads afresh
    return httpx.create_ssl_context(trust_env=trust_env)


def valid_token(token: str) -> bool:
    """Printable ASCII without spaces: all an HTTP header can carry."""
    return bool(token) and all("!" <= c <= "~" for c in token)


class Connection:
    """The pooled HTTP connection: one `exchange` is one request, read whole or refused."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float,
        max_requests_per_second: float,
        concurrency: int,
        transport: httpx.BaseTransport | None,
        max_response_bytes: int,
        deadline_seconds: float,
        on_response: Callable[[str, str], None] | None,
        reached: threading.Event | None = None,
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
        self.max_response_bytes = max_response_bytes
        self.deadline_seconds = deadline_seconds
        self.cancelled = threading.Event()
        # Set once the vendor answered anything in this run (shared by a run's connections):
        # before that, no server at the URL is a wrong setting; after, a passing outage.
        self.reached = reached if reached is not None else threading.Event()
        self._on_response = on_response
        self._limiter = RateLimiter(max_requests_per_second)
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._sockets_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"archiver/{__version__}",
            },
            timeout=timeout,
            transport=transport,
            verify=_tls_context(not loopback),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            # Proxies from the environment: never for loopback (the token would cross a plain
            # http hop); for https, httpx uses only HTTPS_PROXY/ALL_PROXY and tunnels through
            # them, so the token stays inside TLS.
            trust_env=not loopback,
        )

    def __repr__(self) -> str:
        return f"Connection(base_url={str(self._http.base_url)!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def cancel(self) -> None:
        """Refuse further requests and cut those in flight, whatever the vendor is doing."""
        self.cancelled.set()
        with self._sockets_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def _count(self, path: str, status: str) -> None:
        if self._on_response is not None:
            self._on_response(path.removeprefix("/api/").removeprefix("/"), status)

    def exchange(
        self, path: str, params: list[tuple[str, str]], what: str, json_body: bytes | None = None
    ) -> Answer:
        """One GET (a POST of `json_body` when given) in its rate slot; raises `ApiError`
        (httpx exceptions translated here)."""
        try:
            self._limiter.acquire()
            answer = self._read(path, params, what, json_body)
        except _Undecodable as exc:
            self._count(path, "decode_error")
            raise decoding_error(exc.error, what, exc.headers) from None
        except httpx.TransportError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            self._count(path, "timeout" if timeout else "transport_error")
            raise transport_error(
                exc,
                what,
                cancelled=self.cancelled.is_set(),
                first=not self.reached.is_set(),
                base_url=self._http.base_url,
            ) from None
        self._count(path, str(answer.status_code))
        return answer

    def _trace(self, event: str, info: dict[str, Any]) -> socket.socket | None:
        # httpcore reports each new connection: remember its socket so cancel() can cut it.
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return None
        sock = _socket_of(info.get("return_value"))
        if sock is not None:
            with self._sockets_lock:
                self._sockets.add(sock)
        return sock

    def _read(
        self, path: str, params: list[tuple[str, str]], what: str, json_body: bytes | None
    ) -> Answer:
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
                "GET" if json_body is None else "POST",
                path,
                params=httpx.QueryParams(tuple(params)),
                content=json_body,
                headers=None if json_body is None else {"Content-Type": "application/json"},
                extensions={"trace": trace},
            ) as response:
                sock = _socket_of(response.extensions.get("network_stream"))
                if sock is not None:
                    current.append(sock)
                    if expired.is_set():
                        _shutdown(sock)
                self.reached.set()  # an answer, whatever it holds: a server is there
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise self._too_large(what)
                chunks: list[bytes] = []
                size = 0
                try:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self.max_response_bytes:
                            raise self._too_large(what)
                        if expired.is_set():
                            break
                        chunks.append(chunk)
                except httpx.DecodingError as exc:
                    if response.is_success:
                        raise _Undecodable(exc, response.headers) from None
                    # An error page (a 503 or 429 in gzip-labelled HTML) keeps its status:
                    # the status rule applies, the vendor's words fall back to the reason.
                    chunks = []
                if not expired.is_set():
                    return Answer(
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
            f"{self.deadline_seconds:g}s (ARCHIVER_REQUEST_DEADLINE_SECONDS)",
            transient=False,
        )

    def _too_large(self, what: str) -> ResponseFormatError:
        return ResponseFormatError(
            f"{what}: answer larger than {self.max_response_bytes} bytes "
            "(ARCHIVER_MAX_RESPONSE_BYTES)"
        )


class _Undecodable(Exception):
    """A body that failed to decode, with the headers that named its encoding."""

    def __init__(self, error: httpx.DecodingError, headers: httpx.Headers) -> None:
        super().__init__(str(error))
        self.error = error
        self.headers = headers


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
