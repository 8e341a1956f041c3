"""The core vocabulary shared by planner and client: datasets, endpoints, name rules, batches.

Nothing here talks HTTP or parses a body: `archiver.rules.plan` builds on it without the HTTP layer,
and `archiver.api` adds the schemas and parsers. (The simulator keeps its own copy of the
vendor's rules: it is the vendor, not the client.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cached_property

from archiver.errors import RefusedStreamNameError
from archiver.text import printable, unsafe_character
from archiver.timeutil import Resolution, buckets, floor, format_for_api, format_iso

MAX_NAMES_PER_REQUEST = 10
MAX_NAME_LENGTH = 128
_REFUSED = re.compile(r"[/*]|--")


class Dataset(StrEnum):
    """What the archive keeps; each value is also the name of its table."""

    ACCOUNT_USAGE = "account_usage"
    ACCOUNT_GEO_USAGE = "account_geo_usage"
    STREAM_USAGE = "stream_usage"
    STREAM_GEO_USAGE = "stream_geo_usage"


class StreamStatus(StrEnum):
    """A tracked stream's state in the registry: asked about always, daily, or never."""

    ACTIVE = "active"
    DORMANT = "dormant"
    REFUSED = "refused"


class StreamSource(StrEnum):
    """How a stream came to be tracked."""

    CONFIG = "config"
    CLI = "cli"
    DISCOVERED = "discovered"
    TOKEN = "token"
    WEBHOOK = "webhook"
    FEED = "feed"


class RunKind(StrEnum):
    """What started a cycle."""

    SYNC = "sync"
    BACKFILL = "backfill"
    SERVICE = "service"


class RunStatus(StrEnum):
    """How a cycle ended (`running` while it runs; `interrupted` if its process died)."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Endpoint:
    """One vendor series endpoint and the archive table its rows go to."""

    dataset: Dataset
    path: str
    resolutions: tuple[Resolution, ...]
    takes_streams: bool

    @property
    def table(self) -> str:
        """Dataset names are the archive's table names."""
        return self.dataset.value


ACCOUNT_SERIES = Endpoint(
    dataset=Dataset.ACCOUNT_USAGE,
    path="/api/analytics/account/series",
    resolutions=(Resolution.HOUR, Resolution.DAY, Resolution.MONTH),
    takes_streams=False,
)
ACCOUNT_GEO_SERIES = Endpoint(
    dataset=Dataset.ACCOUNT_GEO_USAGE,
    path="/api/analytics/account/geo_series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=False,
)
STREAMS_SERIES = Endpoint(
    dataset=Dataset.STREAM_USAGE,
    path="/api/analytics/streams/series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=True,
)
STREAMS_GEO_SERIES = Endpoint(
    dataset=Dataset.STREAM_GEO_USAGE,
    path="/api/analytics/streams/geo_series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=True,
)
ENDPOINTS = (ACCOUNT_SERIES, ACCOUNT_GEO_SERIES, STREAMS_SERIES, STREAMS_GEO_SERIES)
BY_DATASET: dict[str, Endpoint] = {e.dataset: e for e in ENDPOINTS}
MONITORING_STREAMS_PATH = "/api/monitoring/streams"
PUBLISH_TOKENS_PATH = "/api/publish_token/list"
GRAPHQL_PATH = "/graphql"


def refusal_reason(name: str) -> str | None:
    """Why the vendor cannot report on `name`, or None if it can."""
    if not name:
        return "the name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"the name is longer than {MAX_NAME_LENGTH} characters"
    if (char := unsafe_character(name)) is not None:
        return f"the name contains the control character {printable(char)!r}"
    if match := _REFUSED.search(name):
        return f"the name contains {match.group()!r}, which the vendor never reports on"
    return None


def storable(name: str) -> bool:
    """Whether a refused name may still be kept (as refused) in the stream registry.

    Over-long names and names with control characters are only reported, never stored:
    PostgreSQL refuses NUL, and a registry is no place for a publisher's megabyte.
    """
    return len(name) <= MAX_NAME_LENGTH and unsafe_character(name) is None


def check_stream_name(name: str) -> str:
    """Return `name`, or raise RefusedStreamNameError with the reason."""
    reason = refusal_reason(name)
    if reason is not None:
        raise RefusedStreamNameError(f"stream name '{printable(name, 140)}' refused: {reason}")
    return name


def batches(names: list[str], size: int = MAX_NAMES_PER_REQUEST) -> list[tuple[str, ...]]:
    """Split names into request-sized batches, in order."""
    return [tuple(names[i : i + size]) for i in range(0, len(names), size)]


@dataclass(frozen=True)
class Window:
    """What a parser may keep: one resolution, `[start, stop)`, and the names asked for."""

    resolution: Resolution
    start: datetime
    stop: datetime
    streams: frozenset[str] = frozenset()

    @cached_property
    def keys(self) -> dict[str, datetime]:
        """The answer's time keys as the vendor spells them (`...Z`), to their buckets."""
        return {format_iso(start): start for start in self.buckets}

    @cached_property
    def buckets(self) -> frozenset[datetime]:
        """Every bucket start the answer must hold."""
        return frozenset(buckets(floor(self.start, self.resolution), self.stop, self.resolution))


@dataclass(frozen=True)
class ApiRequest:
    """One call: endpoint, resolution, `[start, stop)` and up to 10 stream names."""

    endpoint: Endpoint
    resolution: Resolution
    start: datetime
    stop: datetime
    streams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.resolution not in self.endpoint.resolutions:
            raise ValueError(f"{self.endpoint.path} does not take resolution {self.resolution}")
        if not self.start < self.stop:
            raise ValueError("a request needs start < stop")
        if self.endpoint.takes_streams:
            if not 1 <= len(self.streams) <= MAX_NAMES_PER_REQUEST:
                raise ValueError(f"{self.endpoint.path} takes 1 to 10 stream names")
            for name in self.streams:
                check_stream_name(name)
        elif self.streams:
            raise ValueError(f"{self.endpoint.path} takes no stream names")

    def params(self) -> list[tuple[str, str]]:
        """Query parameters; stream names as repeated `streamNames` keys."""
        params = [
            ("startDate", format_for_api(self.start, self.resolution)),
            ("stopDate", format_for_api(self.stop, self.resolution)),
            ("resolution", self.resolution.value),
        ]
        params.extend(("streamNames", name) for name in self.streams)
        return params

    def window(self) -> Window:
        """What the parser may keep from the answer."""
        return Window(self.resolution, self.start, self.stop, frozenset(self.streams))

    def describe(self) -> str:
        """A short human description for logs and errors."""
        names = f" streams={','.join(self.streams)}" if self.streams else ""
        return (
            f"{self.endpoint.path.removeprefix('/api/analytics/')} {self.resolution} "
            f"{format_for_api(self.start, self.resolution)}.."
            f"{format_for_api(self.stop, self.resolution)}{names}"
        )
