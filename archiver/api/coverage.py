"""An answer's time keys checked against the asked window: every bucket exactly once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

from archiver.api.errors import ResponseFormatError
from archiver.timeutil import floor, format_iso, utc
from archiver.vocabulary import Window

BlockT = TypeVar("BlockT")


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


def covering(keys: Iterable[str], window: Window, endpoint: str) -> dict[datetime, str]:
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


def block(
    part: dict[str, BlockT] | None, window: Window, endpoint: str
) -> dict[datetime, BlockT] | None:
    """An optional breakdown block by bucket start; if present, it covers the window too."""
    if part is None:
        return None
    return {start: part[key] for start, key in covering(part, window, endpoint).items()}
