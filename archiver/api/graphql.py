"""The vendor's GraphQL API on the REST client's connection: `errors` refused, pages bounded.

A request is a POST of `{"query": ...}` through `AnalyticsClient.call`: the same retries, rate
cap, body cap, overall deadline, proxy rule and token scrubbing as every REST request. Filters
are written inline (the vendor publishes no input type names a query with variables would
need). An answer carrying `errors`, even beside partial `data` in an HTTP 200, is a failed
request (`GraphQLAnswerError`): nothing of it is returned. A walk of `<model>Pagination`
pages reads to `hasNextPage: false` and fails, whole, on a page that repeats the one before,
a page count it outruns, or more than `max_pages` pages: never a hang, never half a walk.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import StrictBool, StrictInt, ValidationError

from archiver.api.decode import Model, load_json, validation_message
from archiver.api.errors import GraphQLAnswerError, ResponseFormatError
from archiver.text import printable
from archiver.vocabulary import GRAPHQL_PATH

if TYPE_CHECKING:
    from archiver.api.client import AnalyticsClient

PAGE_SIZE = 100
MAX_PAGES = 1000
PAGE_FIELDS = "pageInfo {currentPage perPage pageCount hasNextPage}"


class PageInfo(Model):
    """The paging facts of a `<model>Pagination` answer the walk checks."""

    currentPage: StrictInt
    perPage: StrictInt | None = None
    pageCount: StrictInt | None = None
    hasNextPage: StrictBool


class Page(Model):
    """One page: its rows, parsed one by one by the caller (a bad row costs only itself)."""

    items: list[Any] | None
    pageInfo: PageInfo


def literal(value: Any) -> str:
    """A GraphQL input literal: objects with bare field names, strings JSON-quoted (GraphQL
    strings take JSON's escapes), times as ISO 8601 UTC strings."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, datetime):
        return json.dumps(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return json.dumps(value)


def answer_data(content: bytes, what: str) -> dict[str, Any]:
    """The `data` object of an answer, strictly read; an answer with `errors` is refused."""
    raw = load_json(content, what)
    if not isinstance(raw, dict):
        raise ResponseFormatError(f"{what}: the answer is not a JSON object")
    errors = raw.get("errors")
    if errors not in (None, []):
        first = errors[0] if isinstance(errors, list) and errors else errors
        message = first.get("message") if isinstance(first, dict) else first
        count = len(errors) if isinstance(errors, list) else 1
        raise GraphQLAnswerError(
            f"{what}: the vendor answered {count} error(s), first: "
            f"{printable(str(message), 300)}; nothing of this answer is stored"
        )
    data = raw.get("data")
    if not isinstance(data, dict):
        raise ResponseFormatError(f"{what}: the answer holds no `data` object")
    return data


def query(client: AnalyticsClient, text: str, *, what: str) -> dict[str, Any]:
    """Run one query; its `data` (raises ApiError, `GraphQLAnswerError` for `errors`)."""
    body = json.dumps({"query": text}).encode()
    data, _ = client.call(
        GRAPHQL_PATH,
        [],
        what=what,
        decoder=lambda content: answer_data(content, what),
        json_body=body,
    )
    return data  # type: ignore[no-any-return]


def read_pages(
    client: AnalyticsClient,
    resolver: str,
    fields: str,
    arguments: dict[str, Any],
    *,
    what: str,
    per_page: int = PAGE_SIZE,
    max_pages: int = MAX_PAGES,
) -> list[Any]:
    """Every row of a `<model>Pagination` resolver, page after page, or an ApiError."""
    rows: list[Any] = []
    previous: list[Any] | None = None
    extra = "".join(f", {k}: {literal(v)}" for k, v in arguments.items())
    for number in range(1, max_pages + 1):
        where = f"{what} page {number}"
        text = (
            f"{{{resolver}(page: {number}, perPage: {per_page}{extra}) "
            f"{{items {{{fields}}} {PAGE_FIELDS}}}}}"
        )
        data = query(client, text, what=where)
        try:
            page = Page.model_validate(data.get(resolver))
        except ValidationError as exc:
            raise ResponseFormatError(validation_message(where, exc, resolver)) from None
        info, items = page.pageInfo, page.items or []
        if info.currentPage != number:
            raise ResponseFormatError(f"{where}: the answer is page {info.currentPage}")
        if len(items) > per_page:
            raise ResponseFormatError(f"{where}: {len(items)} rows on a page of {per_page}")
        if items and items == previous:
            raise ResponseFormatError(f"{where}: the page repeats the page before")
        rows += items
        if not info.hasNextPage:
            return rows
        if not items or (info.pageCount is not None and number >= info.pageCount):
            raise ResponseFormatError(
                f"{where}: says more pages follow past its end "
                f"({len(items)} rows, page count {info.pageCount})"
            )
        previous = items
    raise ResponseFormatError(f"{what}: still not at the end after {max_pages} pages")


class BadRow(ValueError):
    """One row of an answer that breaks the contract: refused with its reason, the rest read."""


def row_time(value: Any, key: str) -> datetime:
    """A row's time: ISO 8601, or a date alone (its midnight); no zone means UTC."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise BadRow(f"{key} is not a time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRow(f"{key} {printable(value, 40)} is not ISO 8601") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
