"""Each archived endpoint as a small declaration: path, resolutions, streams or not, parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from archiver.api import models
from archiver.errors import RefusedStreamNameError
from archiver.text import printable, unsafe_character
from archiver.timeutil import Resolution, format_for_api

MAX_NAMES_PER_REQUEST = 10
MAX_NAME_LENGTH = 128
_REFUSED = re.compile(r"[/*]|--")


@dataclass(frozen=True)
class Endpoint:
    """One vendor series endpoint and the archive table its rows go to."""

    dataset: str
    path: str
    resolutions: tuple[Resolution, ...]
    takes_streams: bool
    body: TypeAdapter[Any] = field(repr=False, compare=False)
    parser: models.Parser = field(repr=False, compare=False)

    @property
    def table(self) -> str:
        """Dataset names are the archive's table names."""
        return self.dataset


ACCOUNT_SERIES = Endpoint(
    dataset="account_usage",
    path="/api/analytics/account/series",
    resolutions=(Resolution.HOUR, Resolution.DAY, Resolution.MONTH),
    takes_streams=False,
    body=models.ACCOUNT_SERIES_BODY,
    parser=models.parse_account_series,
)
ACCOUNT_GEO_SERIES = Endpoint(
    dataset="account_geo_usage",
    path="/api/analytics/account/geo_series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=False,
    body=models.ACCOUNT_GEO_BODY,
    parser=models.parse_account_geo,
)
STREAMS_SERIES = Endpoint(
    dataset="stream_usage",
    path="/api/analytics/streams/series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=True,
    body=models.STREAMS_SERIES_BODY,
    parser=models.parse_streams_series,
)
STREAMS_GEO_SERIES = Endpoint(
    dataset="stream_geo_usage",
    path="/api/analytics/streams/geo_series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=True,
    body=models.STREAMS_GEO_BODY,
    parser=models.parse_streams_geo,
)
ENDPOINTS = (ACCOUNT_SERIES, ACCOUNT_GEO_SERIES, STREAMS_SERIES, STREAMS_GEO_SERIES)
BY_DATASET = {e.dataset: e for e in ENDPOINTS}
MONITORING_STREAMS_PATH = "/api/monitoring/streams"
PUBLISH_TOKENS_PATH = "/api/publish_token/list"


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

    def window(self) -> models.Window:
        """What the parser may keep from the answer."""
        return models.Window(self.resolution, self.start, self.stop, frozenset(self.streams))

    def describe(self) -> str:
        """A short human description for logs and errors."""
        names = f" streams={','.join(self.streams)}" if self.streams else ""
        return (
            f"{self.endpoint.path.removeprefix('/api/analytics/')} {self.resolution} "
            f"{format_for_api(self.start, self.resolution)}.."
            f"{format_for_api(self.stop, self.resolution)}{names}"
        )


def batches(names: list[str], size: int = MAX_NAMES_PER_REQUEST) -> list[tuple[str, ...]]:
    """Split names into request-sized batches, in order."""
    return [tuple(names[i : i + size]) for i in range(0, len(names), size)]
