"""The parsing side of each archived endpoint: its body schema and its parser, by dataset.

The declarations themselves (path, resolutions, streams or not) and the name rules live in
`archiver.vocabulary`: import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from archiver.api import series
from archiver.vocabulary import Dataset, Endpoint


@dataclass(frozen=True)
class AnswerSchema:
    """How one endpoint's answer is read: the envelope's schema, then the rows' parser."""

    body: TypeAdapter[Any]
    parser: series.Parser


_SCHEMAS: dict[Dataset, AnswerSchema] = {
    Dataset.ACCOUNT_USAGE: AnswerSchema(series.ACCOUNT_SERIES_BODY, series.parse_account_series),
    Dataset.ACCOUNT_GEO_USAGE: AnswerSchema(series.ACCOUNT_GEO_BODY, series.parse_account_geo),
    Dataset.STREAM_USAGE: AnswerSchema(series.STREAMS_SERIES_BODY, series.parse_streams_series),
    Dataset.STREAM_GEO_USAGE: AnswerSchema(series.STREAMS_GEO_BODY, series.parse_streams_geo),
}


def schema_of(endpoint: Endpoint) -> AnswerSchema:
    """The schema and parser of `endpoint`'s answer."""
    return _SCHEMAS[endpoint.dataset]
