"""The parsing side of each answer shape: its body schema and its parser.

The declarations (path, resolutions, streams or not, the answer's shape) live in
`archiver.datasets`: a new dataset whose answer has a known shape needs nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from archiver.api import series, tracking
from archiver.datasets import Answer, Endpoint


@dataclass(frozen=True)
class AnswerSchema:
    """How one endpoint's answer is read: the envelope's schema, then the rows' parser."""

    body: TypeAdapter[Any]
    parser: series.Parser


_SCHEMAS: dict[Answer, AnswerSchema] = {
    Answer.USAGE: AnswerSchema(series.ACCOUNT_SERIES_BODY, series.parse_account_series),
    Answer.GEO: AnswerSchema(series.ACCOUNT_GEO_BODY, series.parse_account_geo),
    Answer.STREAM_USAGE: AnswerSchema(series.STREAMS_SERIES_BODY, series.parse_streams_series),
    Answer.STREAM_GEO: AnswerSchema(series.STREAMS_GEO_BODY, series.parse_streams_geo),
    Answer.STREAM_TRACKING: AnswerSchema(tracking.BODY, tracking.parse_streams_tracking),
}


def schema_of(endpoint: Endpoint) -> AnswerSchema:
    """The schema and parser of `endpoint`'s answer."""
    return _SCHEMAS[endpoint.answer]
