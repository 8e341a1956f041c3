"""`tracking/streams/series`: bytes in and out per subscribe-token tracking ID, per stream.

Each asked stream holds every asked bucket exactly once, each bucket a list (empty: no
traffic) of `{trackingId, bytesIn, bytesOut}`. A missing or null `trackingId` (the vendor's
`""`) is traffic under no tracking ID, kept as `''`. Anything else is refused: a tracking ID
that is not text, longer than the column, or holding a control character; one listed twice
in a bucket; a metric missing, negative or beyond int64. Entries of zeros produce no row.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from pydantic import Field, StrictStr, TypeAdapter

from archiver.api.coverage import covering
from archiver.api.decode import Envelope, Model
from archiver.api.errors import ResponseFormatError
from archiver.api.series import Metric, Parsed, Row, each_stream
from archiver.datasets import MAX_TRACKING_ID_LENGTH
from archiver.text import printable, unsafe_character
from archiver.timeutil import format_iso
from archiver.vocabulary import Window


class TrackingUsage(Model):
    # Strict text: a number or an object where a tracking ID belongs is a broken answer.
    trackingId: StrictStr | None = Field(default=None)
    bytesOut: Metric
    bytesIn: Metric


TrackingBuckets: TypeAlias = dict[str, list[TrackingUsage]]

BODY: TypeAdapter[Envelope[dict[str, Any]]] = TypeAdapter(Envelope[dict[str, Any]])
_BUCKETS: TypeAdapter[TrackingBuckets] = TypeAdapter(TrackingBuckets)


def _tracking_id(value: str | None, where: str) -> str:
    tracking_id = value or ""
    if len(tracking_id) > MAX_TRACKING_ID_LENGTH:
        raise ResponseFormatError(
            f"{where}: trackingId {printable(tracking_id, 32)!r} is longer than "
            f"{MAX_TRACKING_ID_LENGTH} characters"
        )
    if (char := unsafe_character(tracking_id)) is not None:
        raise ResponseFormatError(
            f"{where}: trackingId {printable(tracking_id, 32)!r} holds the control character "
            f"{printable(char)!r}"
        )
    return tracking_id


def _rows(buckets: TrackingBuckets, window: Window, endpoint: str) -> list[Row]:
    rows: list[Row] = []
    for start, key in covering(buckets, window, endpoint).items():
        where = f"{endpoint} {format_iso(start)}"
        seen: set[str] = set()
        for usage in buckets[key]:
            tracking_id = _tracking_id(usage.trackingId, where)
            if tracking_id in seen:
                # Two figures for one tracking ID: which one is the vendor's?
                raise ResponseFormatError(
                    f"{where}: trackingId {printable(tracking_id, 32)!r} is listed twice"
                )
            seen.add(tracking_id)
            if not (usage.bytesIn or usage.bytesOut):
                continue
            rows.append(
                {
                    "resolution": window.resolution.value,
                    "period_start": start,
                    "tracking_id": tracking_id,
                    "bytes_in": usage.bytesIn,
                    "bytes_out": usage.bytesOut,
                }
            )
    return rows


def parse_streams_tracking(per_stream: dict[str, Any], window: Window, endpoint: str) -> Parsed:
    """`tracking/streams/series` (stream, then bucket, then list) -> `stream_tracking_usage`."""
    return each_stream(per_stream, window, endpoint, _rows, _BUCKETS, "data.")
