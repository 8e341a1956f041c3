"""Paged listings: `monitoring/streams` (new streams) and `publish_token/list`, read whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import StrictInt, TypeAdapter

from archiver.api.decode import Envelope, Model
from archiver.api.errors import ResponseFormatError
from archiver.vocabulary import MONITORING_STREAMS_PATH, PUBLISH_TOKENS_PATH

if TYPE_CHECKING:
    from archiver.api.client import AnalyticsClient


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


def stream_names(client: AnalyticsClient, page_size: int, max_pages: int) -> Iterator[str]:
    """Names from `monitoring/streams` (streams created within the last hour), all pages."""
    page = 1
    while page <= max_pages:
        what = f"monitoring/streams page {page}"
        params = [("page", str(page)), ("itemsOnPage", str(page_size))]
        listing: StreamPage
        sent = client.clock_now()
        listing, vendor_time = client.get_dated(
            MONITORING_STREAMS_PATH, params, what=what, body=STREAM_PAGE_BODY
        )
        client.note_reading(vendor_time, sent)
        items = listing.data or []
        for item in items:
            yield item.streamName
        total_pages = listing.pagination.totalPages if listing.pagination else None
        if not items or (total_pages is not None and page >= total_pages):
            return
        page += 1


def publish_tokens(client: AnalyticsClient, page_size: int, max_pages: int) -> list[PublishToken]:
    """Every publish token of the account from `publish_token/list`, all pages."""
    tokens: list[PublishToken] = []
    for page in range(1, max_pages + 1):
        what = f"publish_token/list page {page}"
        params = [("page", str(page)), ("itemsOnPage", str(page_size))]
        items: list[PublishToken] = client.get(
            PUBLISH_TOKENS_PATH, params, what=what, body=PUBLISH_TOKEN_PAGE_BODY
        )
        if not items:
            return tokens
        tokens.extend(items)
    raise ResponseFormatError(f"publish_token/list: still not at the end after {max_pages} pages")
