"""Paged listings: `monitoring/streams` (new streams) and `publish_token/list` schemas."""

from __future__ import annotations

from pydantic import StrictInt, TypeAdapter

from archiver.api.decode import Envelope, Model


class StreamSummary(Model):
    streamName: str
    live: bool | None = None
    startTime: str | None = None


class Pagination(Model):
    totalItems: StrictInt | None = None
    totalPages: StrictInt | None = None
    itemsOnPage: StrictInt | None = None


class StreamPage(Model):
    pagination: Pagination | None = None
    data: list[StreamSummary] | None = None


class TokenStream(Model):
    """One stream entry of a publish token: an exact name, or a pattern when `isRegex`."""

    streamName: str
    isRegex: bool = False


class PublishToken(Model):
    """The fields of a publish token the archive uses (the vendor sends many more)."""

    id: StrictInt
    label: str | None = None
    isActive: bool | None = None
    streams: list[TokenStream] | None = None  # a token may allow no stream yet


STREAM_PAGE_BODY: TypeAdapter[Envelope[StreamPage]] = TypeAdapter(Envelope[StreamPage])
PUBLISH_TOKEN_PAGE_BODY: TypeAdapter[Envelope[list[PublishToken]]] = TypeAdapter(
    Envelope[list[PublishToken]]
)
