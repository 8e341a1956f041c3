"""Optional misbehaviour of the vendor (latency, errors, throttling, cut bodies, a wrong
clock, GraphQL errors, repeated and slow pages, broken GraphQL rows), seeded, and targeted
faults by endpoint (403, a body mislabelled gzip, an unrequested stream)."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from archiver.simulator.rendering import Answer, failure, server_error

BROKEN_ROWS = (
    "ended_before_started",  # a feed
    "hostile_name",  # a feed
    "negative_viewers",  # a stream or account stat
    "off_grid_period",  # a stream or account stat: 2 minutes off the 5-minute grid
    "other_account",  # any row: another account's
)
HOSTILE_NAME = "promo--*\n<script>"


@dataclass(frozen=True)
class Faults:
    """Optional misbehaviour, drawn per API request from a seeded generator."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    truncate_rate: float = 0.0
    retry_after_seconds: int = 1
    seed: int = 0
    # Endpoints named by the end of their path ("streams/series", "monitoring/streams"):
    # answered 403 (the secret lacks their permission) ...
    forbidden: tuple[str, ...] = ()
    # ... or with a plain JSON body labelled `Content-Encoding: gzip` (a misconfigured proxy).
    mislabelled_gzip: tuple[str, ...] = ()
    # A stream every per-stream batch answer holds besides those asked for.
    stranger_stream: str | None = None
    # A wrong `Date` header: shifted by `date_offset_seconds` on every `date_every`-th answer
    # (1: all, 2: every other; `date_phase` 1 starts with the first) among those on paths
    # ending with `date_path` ("": any path); `no_date` sends none at all. The data
    # answered is always the true clock's.
    date_offset_seconds: float = 0.0
    date_every: int = 1
    date_phase: int = 0
    date_path: str = ""
    no_date: bool = False
    # GraphQL (gql.py): this share of answers carry `errors` beside partial data (HTTP 200);
    # from page `graphql_repeat_page` on (0: never) every page answers the one before again,
    # with `hasNextPage` forever true; page `graphql_slow_page` (0: none) is held up to
    # `graphql_slow_seconds` or until `SlowGate.release` is set.
    graphql_error_rate: float = 0.0
    graphql_repeat_page: int = 0
    graphql_slow_page: int = 0
    graphql_slow_seconds: float = 30.0
    # GraphQL rows the vendor should never send, for bad-input handling: the first row each
    # answer selects is broken in these ways (any of BROKEN_ROWS).
    graphql_broken: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.graphql_broken) - set(BROKEN_ROWS)
        if unknown:
            raise ValueError(f"graphql_broken: unknown {sorted(unknown)}; known {BROKEN_ROWS}")


def _named(path: str, endpoints: tuple[str, ...]) -> bool:
    # Named from /api/ or from /api/analytics/: "streams/series" is not tracking/streams/series.
    here = path.removeprefix("/api/")
    return any(path == e or here in (e.strip("/"), "analytics/" + e.strip("/")) for e in endpoints)


def forbidden(faults: Faults, path: str) -> Answer | None:
    """A 403 when `path` is one of the forbidden endpoints."""
    if _named(path, faults.forbidden):
        return failure(403, "Forbidden")
    return None


def mislabelled(faults: Faults, path: str, answer: Answer) -> Answer:
    """A success answer labelled gzip while its body stays plain, on the endpoints named."""
    status, headers, body = answer
    if status != 200 or not _named(path, faults.mislabelled_gzip):
        return answer
    return status, {**headers, "Content-Encoding": "gzip"}, body


class SlowGate:
    """Holds slow pages: `entered` is set when one is being held, `release` lets them go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold(self, seconds: float) -> None:
        """Hold the calling request until released, at most `seconds`."""
        self.entered.set()
        self.release.wait(seconds)


class FaultDraws:
    """The seeded draws that apply a `Faults` to requests and answers.

    The faults are passed per call because tests swap them on a running simulator; the
    generator keeps its sequence across the swap, as it always has.
    """

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._dated = 0

    def before(self, faults: Faults) -> Answer | None:
        """Sleep the latency, then maybe answer with a 503 or a 429 instead of the vendor."""
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if not (faults.error_rate or faults.throttle_rate):
            return None
        with self._lock:
            draw = self._random.random()
        if draw < faults.error_rate:
            return server_error(503, "Service Unavailable")
        if draw < faults.error_rate + faults.throttle_rate:
            return server_error(
                429, "Too Many Requests", {"Retry-After": str(faults.retry_after_seconds)}
            )
        return None

    def graphql_errors(self, faults: Faults) -> bool:
        """Whether this GraphQL answer carries `errors` with partial data."""
        if not faults.graphql_error_rate:
            return False
        with self._lock:
            return self._random.random() < faults.graphql_error_rate

    def after(self, faults: Faults, answer: Answer) -> Answer:
        """Maybe cut the body in half (a connection dropped mid-answer)."""
        if not faults.truncate_rate:
            return answer
        with self._lock:
            cut = self._random.random() < faults.truncate_rate
        if not cut:
            return answer
        status, headers, body = answer
        return status, headers, body[: max(len(body) // 2, 1)]

    def date(self, faults: Faults, path: str, now: datetime) -> str | None:
        """A bent `Date` header for an answer on `path` at the true time `now`: "" for none,
        None to leave the true one."""
        if faults.no_date:
            return ""
        if not faults.date_offset_seconds or not path.endswith(faults.date_path):
            return None
        with self._lock:
            self._dated += 1
            shifted = (self._dated + faults.date_phase) % max(faults.date_every, 1) == 0
        if not shifted:
            return None
        moment = now + timedelta(seconds=faults.date_offset_seconds)
        return email.utils.format_datetime(moment, usegmt=True)


def broken_rows(faults: Faults, model: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with the first one broken as `faults.graphql_broken` says (a copy)."""
    kinds = faults.graphql_broken
    if not kinds or not rows:
        return rows
    first = dict(rows[0])
    if model == "Feed":
        if "ended_before_started" in kinds:
            first["ended"], first["active"] = first["started"] - timedelta(hours=1), False
        if "hostile_name" in kinds:
            first["name"] = HOSTILE_NAME
            first["streamId"] = f"{first['accountId']}/{HOSTILE_NAME}"
    else:
        if "negative_viewers" in kinds:
            first["active"] = -3
        if "off_grid_period" in kinds:
            first["from"] += timedelta(minutes=2)
            first["to"] += timedelta(minutes=2)
    if "other_account" in kinds:
        first["accountId"] = "otheracct"
        if "streamId" in first:
            first["streamId"] = "otheracct/" + first["streamId"].partition("/")[2]
    return [first, *rows[1:]]
