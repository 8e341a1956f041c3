"""Response schemas of the archived endpoints, and parsers into rows with archive column names.

The schemas accept what the live service sends: optional breakdown blocks, `{}` geo buckets,
zero-filled buckets, unknown extra keys (the vendor adds fields over time). Anything else is
refused: every requested bucket and stream exactly once, every metric present, integers in
0..2^63-1 (see `../shared/api/README.md`). Buckets whose metrics are all zero produce no row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, Generic, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, ValidationError

from archiver.api.errors import ResponseFormatError
from archiver.timeutil import Resolution, buckets, floor, format_iso, utc

Row: TypeAlias = dict[str, Any]
DataT = TypeVar("DataT")


MAX_METRIC = 2**63 - 1
# Every metric is a vendor int64 that the archive stores as BIGINT: negative or larger values
# are a broken answer, never something to store (or to crash the database driver with).
Metric: TypeAlias = Annotated[int, Field(strict=True, ge=0, le=MAX_METRIC)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Bandwidth(_Model):
    bytesOut: Metric
    bytesIn: Metric


class Restream(Bandwidth):
    secondsUsed: Metric


class Series(_Model):
    bandwidth: dict[str, Bandwidth]
    standardStream: dict[str, Bandwidth] | None = None
    restream: dict[str, Restream] | None = None
    geoCascade: dict[str, Bandwidth] | None = None


class CountryUsage(_Model):
    publishes: Metric
    views: Metric
    publishDuration: Metric
    viewDuration: Metric
    bytesOut: Metric
    bytesIn: Metric


GeoBuckets: TypeAlias = dict[str, dict[str, CountryUsage]]


class AccountGeo(_Model):
    geo: GeoBuckets


class StreamsGeo(_Model):
    """`streams/geo_series`: each stream's buckets are validated on their own (see parser)."""

    geo: dict[str, Any]


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

    @cached_property
    def keys(self) -> dict[str, datetime]:
        """The answer's time keys as the vendor spells them (`...Z`), to their buckets."""
        return {format_iso(start): start for start in self.buckets}

    @cached_property
    def buckets(self) -> frozenset[datetime]:
        """Every bucket start the answer must hold."""
        return frozenset(buckets(floor(self.start, self.resolution), self.stop, self.resolution))


def _where(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "body"


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys: a bucket sent twice must be refused instead.
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _load(body: bytes, endpoint: str) -> Any:
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise ResponseFormatError(
            f"{endpoint}: the response repeats the key {exc.key[:64]!r}"
        ) from None
    except json.JSONDecodeError:
        raise ResponseFormatError(
            f"{endpoint}: response is not complete JSON ({len(body)} bytes)", truncated=True
        ) from None
    except (ValueError, RecursionError) as exc:
        # Invalid UTF-8, integers of thousands of digits, absurd nesting.
        raise ResponseFormatError(
            f"{endpoint}: response is not valid JSON ({type(exc).__name__})"
        ) from None


def _validation_message(endpoint: str, exc: ValidationError, prefix: str = "") -> str:
    first = exc.errors()[0]
    where = _where(first)
    if prefix:
        where = f"{prefix}.{where}" if where != "body" else prefix
    kind = "response" if where == "data" or where.startswith("data.") else "envelope"
    return f"{endpoint}: unexpected {kind} at {where[:200]}: {first['msg']}"


def decode(body: bytes, schema: TypeAdapter[Any], *, endpoint: str) -> Any:
    """Parse and validate a success body; returns its typed `data`.

    A truncated body, repeated keys, a foreign envelope or data of the wrong shape raise
    ResponseFormatError naming the endpoint and the part that did not match.
    """
    raw = _load(body, endpoint)
    try:
        envelope = schema.validate_python(raw)
    except ValidationError as exc:
        raise ResponseFormatError(_validation_message(endpoint, exc)) from None
    return envelope.data


def _bucket(key: str, window: Window, endpoint: str) -> datetime:
    try:
        start = utc(datetime.fromisoformat(key.replace("Z", "+00:00")))
    except ValueError:
        raise ResponseFormatError(
            f"{endpoint}: time key {key[:64]!r} is not an ISO 8601 time"
        ) from None
    if floor(start, window.resolution) != start:
        raise ResponseFormatError(
            f"{endpoint}: time key {key[:64]!r} is not the start of a {window.resolution} bucket"
        )
    return start


def _covering(keys: Iterable[str], window: Window, endpoint: str) -> dict[datetime, str]:
    """Bucket start -> key, checked to be exactly the buckets of the window, each once.

    The vendor sends empty buckets zero-filled (`{}` in geo series): a missing bucket is a
    broken answer, not "no traffic"; a bucket outside the window was not asked for.
    """
    found: dict[datetime, str] = {}
    spelled = window.keys
    for key in keys:
        # The vendor's usual spelling is looked up; any other is parsed (and may repeat one).
        start = spelled.get(key) or _bucket(key, window, endpoint)
        if start in found:
            raise ResponseFormatError(
                f"{endpoint}: bucket {format_iso(start)} is sent twice "
                f"({found[start][:40]!r} and {key[:40]!r})"
            )
        found[start] = key
    expected = window.buckets
    if found.keys() != expected:
        missing = sorted(expected - found.keys())
        extra = sorted(found.keys() - expected)
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} requested buckets missing (first {format_iso(missing[0])})"
            )
        if extra:
            parts.append(f"{len(extra)} buckets not requested (first {format_iso(extra[0])})")
        raise ResponseFormatError(f"{endpoint}: {'; '.join(parts)}")
    return found


def _usage_rows(series: Series, window: Window, endpoint: str) -> list[Row]:
    found = _covering(series.bandwidth, window, endpoint)
    # The breakdown blocks are optional (older answers lack them), but one that is present
    # must cover the same buckets: a half-filled block is not "no restream traffic".
    standard = _block(series.standardStream, window, f"{endpoint} standardStream")
    restream = _block(series.restream, window, f"{endpoint} restream")
    cascade = _block(series.geoCascade, window, f"{endpoint} geoCascade")
    rows: list[Row] = []
    for start, key in found.items():
        total = series.bandwidth[key]
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
        if standard is not None:
            part = standard[start]
            row["standard_bytes_in"], row["standard_bytes_out"] = part.bytesIn, part.bytesOut
        if restream is not None:
            extra = restream[start]
            row["restream_bytes_in"], row["restream_bytes_out"] = extra.bytesIn, extra.bytesOut
            row["restream_seconds"] = extra.secondsUsed
        if cascade is not None:
            part = cascade[start]
            row["cascade_bytes_in"], row["cascade_bytes_out"] = part.bytesIn, part.bytesOut
        if any(row[name] for name in _USAGE_METRICS):
            rows.append(row)
    return rows


BlockT = TypeVar("BlockT")


def _block(
    block: dict[str, BlockT] | None, window: Window, endpoint: str
) -> dict[datetime, BlockT] | None:
    if block is None:
        return None
    return {start: block[key] for start, key in _covering(block, window, endpoint).items()}


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


# ISO 3166-1 alpha-2 in practice; up to 8 letters or digits (the column's width) in case the
# vendor marks unknown locations with a longer code.
_COUNTRY = re.compile(r"[A-Za-z0-9]{1,8}")


def _geo_rows(buckets: GeoBuckets, window: Window, endpoint: str) -> list[Row]:
    rows: list[Row] = []
    for start, key in _covering(buckets, window, endpoint).items():
        for country, usage in buckets[key].items():
            if not _COUNTRY.fullmatch(country):
                raise ResponseFormatError(
                    f"{endpoint}: country key {country[:16]!r} in {format_iso(start)} is not a "
                    "country code"
                )
            if not (
                usage.publishes
                or usage.views
                or usage.publishDuration
                or usage.viewDuration
                or usage.bytesIn
                or usage.bytesOut
            ):
                continue
            rows.append(
                {
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
            )
    return rows


ACCOUNT_SERIES_BODY: TypeAdapter[Envelope[Series]] = TypeAdapter(Envelope[Series])
STREAMS_SERIES_BODY: TypeAdapter[Envelope[dict[str, Any]]] = TypeAdapter(Envelope[dict[str, Any]])
ACCOUNT_GEO_BODY: TypeAdapter[Envelope[AccountGeo]] = TypeAdapter(Envelope[AccountGeo])
STREAMS_GEO_BODY: TypeAdapter[Envelope[StreamsGeo]] = TypeAdapter(Envelope[StreamsGeo])
STREAM_PAGE_BODY: TypeAdapter[Envelope[StreamPage]] = TypeAdapter(Envelope[StreamPage])
_SERIES: TypeAdapter[Series] = TypeAdapter(Series)
_GEO_BUCKETS: TypeAdapter[GeoBuckets] = TypeAdapter(GeoBuckets)


@dataclass
class Parsed:
    """A response's rows, and the streams whose part of it was broken (name -> reason).

    Rows of a failed stream are left out: its watermark stays and the next cycle asks again.
    """

    rows: list[Row]
    failed: dict[str, str] = field(default_factory=dict)


def parse_account_series(series: Series, window: Window, endpoint: str) -> Parsed:
    """`account/series` -> `account_usage` rows."""
    return Parsed(_usage_rows(series, window, endpoint))


def parse_account_geo(model: AccountGeo, window: Window, endpoint: str) -> Parsed:
    """`account/geo_series` -> `account_geo_usage` rows."""
    return Parsed(_geo_rows(model.geo, window, endpoint))


def _per_stream(
    per_stream: dict[str, Any],
    window: Window,
    endpoint: str,
    rows_of: Callable[[Any, Window, str], list[Row]],
    adapter: TypeAdapter[Any],
    prefix: str,
) -> Parsed:
    unasked = [name for name in per_stream if name not in window.streams]
    if unasked:
        raise ResponseFormatError(
            f"{endpoint}: the response has {len(unasked)} stream(s) that were not asked for "
            f"(first {unasked[0][:64]!r})"
        )
    parsed = Parsed([])
    for name in sorted(window.streams):
        if name not in per_stream:
            parsed.failed[name] = f"{endpoint}: stream {name!r} is missing from the response"
            continue
        try:
            model = adapter.validate_python(per_stream[name])
            rows = rows_of(model, window, f"{endpoint} stream {name!r}")
        except ValidationError as exc:
            parsed.failed[name] = _validation_message(endpoint, exc, f"{prefix}{name[:64]}")
            continue
        except ResponseFormatError as exc:
            parsed.failed[name] = str(exc)
            continue
        for row in rows:
            row["stream_name"] = name
        parsed.rows.extend(rows)
    return parsed


def parse_streams_series(per_stream: dict[str, Any], window: Window, endpoint: str) -> Parsed:
    """`streams/series` (stream first, then block) -> `stream_usage` rows."""
    return _per_stream(per_stream, window, endpoint, _usage_rows, _SERIES, "data.")


def parse_streams_geo(model: StreamsGeo, window: Window, endpoint: str) -> Parsed:
    """`streams/geo_series` (`geo` first, then stream) -> `stream_geo_usage` rows."""
    return _per_stream(model.geo, window, endpoint, _geo_rows, _GEO_BUCKETS, "data.geo.")


Parser: TypeAlias = Callable[[Any, Window, str], Parsed]


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
