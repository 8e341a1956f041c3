"""Analytics series (usage and geo, account and streams): schemas and parsers into rows.

The schemas accept what the live service sends: optional breakdown blocks, `{}` geo buckets,
zero-filled buckets, unknown extra keys (the vendor adds fields over time). Anything else is
refused: every requested bucket and stream exactly once, every metric present, integers in
0..2^63-1 (the vendor's contract: every metric is an int64; empty buckets are zero-filled, or `{}`
in geo series, never omitted). Buckets whose metrics are all zero produce no row.
Rows carry the archive's column names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeAlias

from pydantic import Field, TypeAdapter, ValidationError

from archiver.api.coverage import block, covering
from archiver.api.decode import Envelope, Model, validation_message
from archiver.api.errors import ResponseFormatError
from archiver.timeutil import format_iso
from archiver.vocabulary import Window

Row: TypeAlias = dict[str, Any]

MAX_METRIC = 2**63 - 1
# Every metric is a vendor int64 that the archive stores as BIGINT: negative or larger values
# are a broken answer, never something to store (or to crash the database driver with).
Metric: TypeAlias = Annotated[int, Field(strict=True, ge=0, le=MAX_METRIC)]


class Bandwidth(Model):
    bytesOut: Metric
    bytesIn: Metric


class Restream(Bandwidth):
    secondsUsed: Metric


class Series(Model):
    bandwidth: dict[str, Bandwidth]
    standardStream: dict[str, Bandwidth] | None = None
    restream: dict[str, Restream] | None = None
    geoCascade: dict[str, Bandwidth] | None = None


class CountryUsage(Model):
    publishes: Metric
    views: Metric
    publishDuration: Metric
    viewDuration: Metric
    bytesOut: Metric
    bytesIn: Metric


GeoBuckets: TypeAlias = dict[str, dict[str, CountryUsage]]


class AccountGeo(Model):
    geo: GeoBuckets


class StreamsGeo(Model):
    """`streams/geo_series`: each stream's buckets are validated on their own (see parser)."""

    geo: dict[str, Any]


def _usage_rows(series: Series, window: Window, endpoint: str) -> list[Row]:
    found = covering(series.bandwidth, window, endpoint)
    # The breakdown blocks are optional (older answers lack them), but one that is present
    # must cover the same buckets: a half-filled block is not "no restream traffic".
    standard = block(series.standardStream, window, f"{endpoint} standardStream")
    restream = block(series.restream, window, f"{endpoint} restream")
    cascade = block(series.geoCascade, window, f"{endpoint} geoCascade")
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
    for start, key in covering(buckets, window, endpoint).items():
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
_SERIES: TypeAdapter[Series] = TypeAdapter(Series)
_GEO_BUCKETS: TypeAdapter[GeoBuckets] = TypeAdapter(GeoBuckets)


@dataclass
class Parsed:
    """A response's rows, and the streams whose part of it was broken (name -> reason).

    Rows of a failed stream are left out: its watermark stays and the next cycle asks again.
    """

    rows: list[Row]
    failed: dict[str, str] = field(default_factory=dict)
    # Streams the answer holds that were not asked for: reported, never stored.
    strangers: list[str] = field(default_factory=list)


def parse_account_series(series: Series, window: Window, endpoint: str) -> Parsed:
    """`account/series` -> `account_usage` rows."""
    return Parsed(_usage_rows(series, window, endpoint))


def parse_account_geo(model: AccountGeo, window: Window, endpoint: str) -> Parsed:
    """`account/geo_series` -> `account_geo_usage` rows."""
    return Parsed(_geo_rows(model.geo, window, endpoint))


def each_stream(
    per_stream: dict[str, Any],
    window: Window,
    endpoint: str,
    rows_of: Callable[[Any, Window, str], list[Row]],
    adapter: TypeAdapter[Any],
    prefix: str,
) -> Parsed:
    """Each asked stream's part of a per-stream answer, parsed by `rows_of` on its own."""
    # A stream not asked for costs only itself: the requested streams' parts are judged
    # each on their own, as always (a batch holds up to 10 streams).
    parsed = Parsed([], strangers=[name for name in per_stream if name not in window.streams])
    for name in sorted(window.streams):
        if name not in per_stream:
            parsed.failed[name] = f"{endpoint}: stream {name!r} is missing from the response"
            continue
        try:
            model = adapter.validate_python(per_stream[name])
            rows = rows_of(model, window, f"{endpoint} stream {name!r}")
        except ValidationError as exc:
            parsed.failed[name] = validation_message(endpoint, exc, f"{prefix}{name[:64]}")
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
    return each_stream(per_stream, window, endpoint, _usage_rows, _SERIES, "data.")


def parse_streams_geo(model: StreamsGeo, window: Window, endpoint: str) -> Parsed:
    """`streams/geo_series` (`geo` first, then stream) -> `stream_geo_usage` rows."""
    return each_stream(model.geo, window, endpoint, _geo_rows, _GEO_BUCKETS, "data.geo.")


Parser: TypeAlias = Callable[[Any, Window, str], Parsed]
