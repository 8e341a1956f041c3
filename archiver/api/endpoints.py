"""The parsing side of each archived endpoint: its body schema and its parser, by dataset.

The declarations themselves (path, resolutions, streams or not) and the name rules live in
`archiver.vocabulary`; they are re-exported here for the modules that import them from the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from archiver.api import series
from archiver.vocabulary import (
    ACCOUNT_GEO_SERIES,
    ACCOUNT_SERIES,
    BY_DATASET,
    ENDPOINTS,
    MAX_NAME_LENGTH,
    MAX_NAMES_PER_REQUEST,
    MONITORING_STREAMS_PATH,
    PUBLISH_TOKENS_PATH,
    STREAMS_GEO_SERIES,
    STREAMS_SERIES,
    ApiRequest,
    Dataset,
    Endpoint,
    batches,
    check_stream_name,
    refusal_reason,
    storable,
)

__all__ = [
    "ACCOUNT_GEO_SERIES",
    "ACCOUNT_SERIES",
    "BY_DATASET",
    "ENDPOINTS",
    "MAX_NAMES_PER_REQUEST",
    "MAX_NAME_LENGTH",
    "MONITORING_STREAMS_PATH",
    "PUBLISH_TOKENS_PATH",
    "STREAMS_GEO_SERIES",
    "STREAMS_SERIES",
    "AnswerSchema",
    "ApiRequest",
    "Endpoint",
    "batches",
    "check_stream_name",
    "refusal_reason",
    "schema_of",
    "storable",
]


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
