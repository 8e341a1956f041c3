"""The outcome of one request, as the client hands it to the cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from archiver.api.errors import ApiError
from archiver.api.series import Row
from archiver.rules.reading import Reading
from archiver.vocabulary import ApiRequest


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one request: rows and the time they were read, or the error."""

    request: ApiRequest
    rows: list[Row]
    fetched_at: datetime
    error: ApiError | None = None
    # Streams whose part of an otherwise good answer was broken: name -> reason.
    failed: dict[str, str] = field(default_factory=dict)
    # Streams the answer holds that were not asked for (escaped, bounded): never stored.
    strangers: list[str] = field(default_factory=list)
    # The answer's `Date` header and our clock around it (None: no answer).
    reading: Reading | None = None
