"""Response schemas of the archived endpoints, and parsers into rows with archive column names.

The schemas accept what the live service sends: optional breakdown blocks, `{}` geo buckets,
zero-filled buckets, unknown extra keys (the vendor adds fields over time). Metrics must be
integers. Buckets whose metrics are all zero produce no row: an absent row means "no traffic".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, StrictInt, TypeAdapter, ValidationError

from archiver.api.errors import ResponseFormatError
from archiver.timeutil import Resolution, floor, utc

Row: TypeAlias = dict[str, Any]
DataT = TypeVar("DataT")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Bandwidth(_Model):
    bytesOut: StrictInt = 0
    bytesIn: StrictInt = 0


class Restream(Bandwidth):
    secondsUsed: StrictInt = 0


class Series(_Model):
    bandwidth: dict[str, Bandwidth] = {}
    standardStream: dict[str, Bandwidth] | None = None
    restream: dict[str, Restream] | None = None
    geoCascade: dict[str, Bandwidth] | None = None


class CountryUsage(_Model):
    publishes: StrictInt = 0
    views: StrictInt = 0
    publishDuration: StrictInt = 0
    viewDuration: StrictInt = 0
    bytesOut: StrictInt = 0
    bytesIn: StrictInt = 0


GeoBuckets: TypeAlias = dict[str, dict[str, CountryUsage]]


class AccountGeo(_Model):
    geo: GeoBuckets = {}


class StreamsGeo(_Model):
    geo: dict[str, GeoBuckets] = {}


class StreamSummary(_Model):
    streamName: str
    live: bool | None = None
    startTime: str | None = None


class Pagination(_Model):
    totalItems: StrictInt | None = None
    totalPages: StrictInt | None = None
    itemsOnPage: StrictInt | None = None


class StreamPage(_Model):
    pagination: Pagination | None = None
    data: list[StreamSummary] | None = None


class Envelope(_Model, Generic[DataT]):
    """The vendor's success envelope around a typed `data`."""

    status: Literal["success"]
    data: DataT


@dataclass(frozen=True)
class Window:
    """What a parser may keep: one resolution, `[start, stop)`, and the names asked for."""

    resolution: Resolution
    start: datetime
    stop: datetime
    streams: frozenset[str] = frozenset()


def _where(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "body"


def decode(body: bytes, schema: TypeAdapter[Any], *, endpoint: str) -> Any:
    """Parse and validate a success body in one pass; returns its typed `data`.

    A truncated body, a foreign envelope or data of the wrong shape raise
    ResponseFormatError naming the endpoint and the part that did not match.
    """
    try:
        envelope = schema.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise ResponseFormatError(
                f"{endpoint}: response is not complete JSON ({len(body)} bytes)", truncated=True
            ) from None
        where = _where(first)
        if where == "data" or where.startswith("data."):
            raise ResponseFormatError(
                f"{endpoint}: unexpected response at {where}: {first['msg']}"
            ) from None
        raise ResponseFormatError(
            f"{endpoint}: unexpected envelope at {where}: {first['msg']}"
        ) from None
    return envelope.data


def _bucket(key: str, window: Window, endpoint: str) -> datetime | None:
    try:
        start = utc(datetime.fromisoformat(key.replace("Z", "+00:00")))
    except ValueError:
        raise ResponseFormatError(f"{endpoint}: time key {key!r} is not an ISO 8601 time") from None
    if floor(start, window.resolution) != start:
        raise ResponseFormatError(
            f"{endpoint}: time key {key!r} is not the start of a {window.resolution} bucket"
        )
    # The archive keeps only what was asked for: a bucket outside the window is not invented.
    return start if window.start <= start < window.stop else None


def _usage_rows(series: Series, window: Window, endpoint: str) -> Iterable[Row]:
    standard = series.standardStream
    restream = series.restream
    cascade = series.geoCascade
    for key, total in series.bandwidth.items():
        start = _bucket(key, window, endpoint)
        if start is None:
            continue
        row: Row = {
            "resolution": window.resolution.value,
            "period_start": start,
            "bytes_in": total.bytesIn,
            "bytes_out": total.bytesOut,
            "standard_bytes_in": None,
            "standard_bytes_out": None,
            "restream_bytes_in": None,
            "restream_bytes_out": None,
            "restream_seconds": None,
            "cascade_bytes_in": None,
            "cascade_bytes_out": None,
        }
        if standard is not None and (part := standard.get(key)) is not None:
            row["standard_bytes_in"], row["standard_bytes_out"] = part.bytesIn, part.bytesOut
        if restream is not None and (extra := restream.get(key)) is not None:
            row["restream_bytes_in"], row["restream_bytes_out"] = extra.bytesIn, extra.bytesOut
            row["restream_seconds"] = extra.secondsUsed
        if cascade is not None and (part := cascade.get(key)) is not None:
            row["cascade_bytes_in"], row["cascade_bytes_out"] = part.bytesIn, part.bytesOut
        if any(row[name] for name in _USAGE_METRICS):
            yield row


_USAGE_METRICS = (
    "bytes_in",
    "bytes_out",
    "standard_bytes_in",
    "standard_bytes_out",
    "restream_bytes_in",
    "restream_bytes_out",
    "restream_seconds",
    "cascade_bytes_in",
    "cascade_bytes_out",
)


def _geo_rows(buckets: GeoBuckets, window: Window, endpoint: str) -> Iterable[Row]:
    for key, countries in buckets.items():
        start = _bucket(key, window, endpoint)
        if start is None:
            continue
        for country, usage in countries.items():
            row: Row = {
                "resolution": window.resolution.value,
                "period_start": start,
                "country": country,
                "publishes": usage.publishes,
                "views": usage.views,
                "publish_seconds": usage.publishDuration,
                "view_seconds": usage.viewDuration,
                "bytes_in": usage.bytesIn,
                "bytes_out": usage.bytesOut,
            }
            if (
                usage.publishes
                or usage.views
                or usage.publishDuration
                or usage.viewDuration
                or usage.bytesIn
                or usage.bytesOut
            ):
                yield row


ACCOUNT_SERIES_BODY: TypeAdapter[Envelope[Series]] = TypeAdapter(Envelope[Series])
STREAMS_SERIES_BODY: TypeAdapter[Envelope[dict[str, Series]]] = TypeAdapter(
    Envelope[dict[str, Series]]
)
ACCOUNT_GEO_BODY: TypeAdapter[Envelope[AccountGeo]] = TypeAdapter(Envelope[AccountGeo])
STREAMS_GEO_BODY: TypeAdapter[Envelope[StreamsGeo]] = TypeAdapter(Envelope[StreamsGeo])
STREAM_PAGE_BODY: TypeAdapter[Envelope[StreamPage]] = TypeAdapter(Envelope[StreamPage])


def _known_streams(names: Iterable[str], window: Window) -> Iterable[str]:
    return (name for name in names if name in window.streams)


def parse_account_series(series: Series, window: Window, endpoint: str) -> list[Row]:
    """`account/series` -> `account_usage` rows."""
    return list(_usage_rows(series, window, endpoint))


def parse_account_geo(model: AccountGeo, window: Window, endpoint: str) -> list[Row]:
    """`account/geo_series` -> `account_geo_usage` rows."""
    return list(_geo_rows(model.geo, window, endpoint))


def parse_streams_series(per_stream: dict[str, Series], window: Window, endpoint: str) -> list[Row]:
    """`streams/series` (stream first, then block) -> `stream_usage` rows."""
    rows: list[Row] = []
    for name in _known_streams(per_stream, window):
        for row in _usage_rows(per_stream[name], window, endpoint):
            row["stream_name"] = name
            rows.append(row)
    return rows


def parse_streams_geo(model: StreamsGeo, window: Window, endpoint: str) -> list[Row]:
    """`streams/geo_series` (`geo` first, then stream) -> `stream_geo_usage` rows."""
    rows: list[Row] = []
    for name in _known_streams(model.geo, window):
        for row in _geo_rows(model.geo[name], window, endpoint):
            row["stream_name"] = name
            rows.append(row)
    return rows


Parser: TypeAlias = Callable[[Any, Window, str], list[Row]]


class TokenStream(_Model):
    """One stream entry of a publish token: an exact name, or a pattern when `isRegex`."""

    streamName: str
    isRegex: bool = False


class PublishToken(_Model):
    """The fields of a publish token the archive uses (the vendor sends many more)."""

    id: StrictInt
    label: str | None = None
    isActive: bool | None = None
    streams: list[TokenStream] | None = None  # a token may allow no stream yet


PUBLISH_TOKEN_PAGE_BODY: TypeAdapter[Envelope[list[PublishToken]]] = TypeAdapter(
    Envelope[list[PublishToken]]
)
