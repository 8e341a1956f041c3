"""The GraphQL client and the feeds parser on a fake vendor: the REST transport's rules, `errors`
refused, pages read to the end and bounded, bad rows refused one by one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from archiver.api.errors import (
    AuthenticationError,
    ResponseFormatError,
)
from archiver.api.feeds import parse_feeds, read_feeds
from archiver.api.graphql import literal, read_pages
from tests.apifakes import fake_client
from tests.simhelpers import TOKEN

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
NOW = SINCE + timedelta(hours=12)  # less than a window: the feeds of before SINCE, then one walk
EMPTY = {"items": [], "pageInfo": {"currentPage": 1, "hasNextPage": False}}


def feed(name: str, started: str, ended: str | None = None, **extra: Any) -> dict[str, Any]:
    row = {
        "accountId": "acct",
        "streamId": f"acct/{name}",
        "name": name,
        "started": started,
        "ended": ended,
        "active": ended is None,
    }
    return {**row, **extra}


def page(items: list[Any], number: int, count: int, per_page: int = 100) -> dict[str, Any]:
    pages = -(-count // per_page)
    info = {"currentPage": number, "perPage": per_page, "pageCount": pages}
    return {"items": items, "pageInfo": {**info, "hasNextPage": number < pages}}


def failed_read(client: Any, **options: Any) -> str:
    """Why a read failed: a walk that fails costs its own window, the read goes on."""
    read = read_feeds(client, SINCE, NOW, **options)
    assert read.failed is not None
    return read.failed


def vendor(pages: list[dict[str, Any]]) -> Any:
    """Answers page `n` of a feedPagination walk with `pages[n - 1]`."""

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "lt: " in body["query"]:  # the walk of feeds started before SINCE: none
            return httpx.Response(200, json={"data": {"feedPagination": EMPTY}})
        number = int(body["query"].split("page: ")[1].split(",")[0])
        return httpx.Response(200, json={"data": {"feedPagination": pages[number - 1]}})

    return answer


def test_a_walk_posts_json_with_the_token_and_reads_every_page() -> None:
    rows = [feed(f"s{i}", "2026-11-02T10:00:00.000Z", "2026-11-02T11:00:00.000Z") for i in range(7)]
    pages = [page(rows[:3], 1, 7, 3), page(rows[3:6], 2, 7, 3), page(rows[6:], 3, 7, 3)]
    client, asked = fake_client(vendor(pages))
    with client:
        read = read_feeds(client, SINCE, NOW, per_page=3)
    assert [f.stream_name for f in read.feeds] == [f"s{i}" for i in range(7)]
    assert read.refused == []
    assert len(asked) == 4
    filters = set()
    for request in asked:
        assert request.method == "POST"
        assert request.url.path == "/graphql"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Content-Type"] == "application/json"
        query = json.loads(request.content)["query"]
        assert "perPage: 3" in query
        filters.add(query.split("filter: ")[1].split(") {items")[0])
    since = '"2026-11-01T00:00:00Z"'
    assert filters == {
        f"{{AND: [{{_operators: {{started: {{lt: {since}}}}}}}, "
        f"{{OR: [{{_operators: {{ended: {{gte: {since}}}}}}}, {{active: true}}]}}]}}",
        f"{{_operators: {{started: {{gte: {since}}}}}}}",
    }


def test_an_errors_answer_with_partial_data_is_a_failed_request_never_retried() -> None:
    partial = {
        "errors": [{"message": f"timed out for Bearer {TOKEN}"}],
        "data": {"feedPagination": page([feed("s", "2026-11-02")], 1, 1)},
    }
    client, asked = fake_client(lambda _: httpx.Response(200, json=partial))
    with client:
        failed = failed_read(client)
    assert len(asked) == 2  # each walk asked once: the next cycle asks again
    assert "the vendor answered 1 error(s)" in failed
    assert TOKEN not in failed  # scrubbed as every vendor text is
    assert "[redacted]" in failed


def test_a_vendor_that_keeps_failing_is_not_asked_again_for_every_window() -> None:
    # A 503 after every retry would fail each window's walk the same way: 32 of them on a
    # first read. The read stops at the first; the next cycle asks again.
    client, asked = fake_client(lambda _: httpx.Response(503))
    with client:
        read = read_feeds(client, SINCE - timedelta(days=30), NOW)
    assert read.failed is not None
    assert read.failed.startswith("1 of 32 walks failed")
    assert read.failed.endswith("the walks after it were not asked")
    assert len(asked) > 1  # retried, as for REST
    assert len({request.content for request in asked}) == 1  # all of them the first walk


def test_the_rest_transport_rules_hold_retries_401_and_the_body_cap() -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json={"data": {"x": page([], 1, 0)}})])
    client, asked = fake_client(lambda _: next(answers))
    with client:
        assert read_pages(client, "x", "name", {}, what="x") == []
    assert len(asked) == 2  # a 503 is retried, as for REST
    client, _ = fake_client(lambda _: httpx.Response(401))
    with client, pytest.raises(AuthenticationError):
        read_feeds(client, SINCE, NOW)
    big = {"data": {"x": page([feed("s" * 50, "2026-11-02")] * 100, 1, 100)}}
    client, _ = fake_client(lambda _: httpx.Response(200, json=big), max_response_bytes=4096)
    with client, pytest.raises(ResponseFormatError, match="larger than 4096"):
        read_pages(client, "x", "name", {}, what="x")


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        # The fault the simulator plays: the page before again, more forever.
        (
            [
                page([feed("a", "2026-11-02")], 1, 3, 1),
                page([feed("b", "2026-11-02")], 2, 3, 1),
                page([feed("b", "2026-11-02")], 3, 3, 1)
                | {"pageInfo": {"currentPage": 3, "hasNextPage": True}},
            ],
            "repeats the page before",
        ),
        # More pages promised past its own page count.
        (
            [
                {
                    "items": [feed("a", "2026-11-02")],
                    "pageInfo": {"currentPage": 1, "pageCount": 1, "hasNextPage": True},
                }
            ],
            "past its end",
        ),
        # An empty page that says more follow.
        ([{"items": [], "pageInfo": {"currentPage": 1, "hasNextPage": True}}], "past its end"),
        # Another page than the one asked.
        ([{"items": [], "pageInfo": {"currentPage": 2, "hasNextPage": False}}], "is page 2"),
        # No pageInfo at all.
        ([{"items": []}], "unexpected"),
    ],
)
def test_a_walk_that_would_not_end_is_an_error(pages: list[Any], message: str) -> None:
    client, _ = fake_client(vendor(pages))
    with client:
        assert message in failed_read(client)


def test_a_walk_is_bounded_by_its_page_count() -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        query = json.loads(request.content)["query"]
        if "lt: " in query:
            return httpx.Response(200, json={"data": {"feedPagination": EMPTY}})
        number = int(query.split("page: ")[1].split(",")[0])
        items = [feed(f"s{number}", "2026-11-02")]
        info = {"currentPage": number, "hasNextPage": True}
        return httpx.Response(
            200, json={"data": {"feedPagination": {"items": items, "pageInfo": info}}}
        )

    client, asked = fake_client(endless)
    with client:
        assert "still not at the end after 5 pages" in failed_read(client, max_pages=5)
    assert len([r for r in asked if b"lt: " not in r.content]) == 5


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"data": null}',
        b'{"data": {"feedPagination": 1}}',
        b'{"data": {}, "data": {}}',
    ],
)
def test_a_body_of_the_wrong_shape_is_refused(body: bytes) -> None:
    client, _ = fake_client(lambda _: httpx.Response(200, content=body))
    with client:
        assert "2 of 2 walks failed" in failed_read(client)


def test_bad_rows_are_refused_one_by_one_and_the_rest_goes_on() -> None:
    good = feed("cam-1", "2026-11-02T10:00:00.000Z", "2026-11-02T11:00:00.000Z")
    rows: list[Any] = [
        good,
        feed("cam\x1b[2J", "2026-11-02"),  # hostile: control characters
        feed("x" * 200, "2026-11-02"),  # too long to store
        feed("cam-2", "2026-11-02T10:00:00Z", "2026-11-02T09:00:00Z"),  # ended before started
        feed("cam-3", "2026-11-02", accountId="other", streamId="other/cam-3"),  # other account
        feed("cam-4", "2026-11-02", streamId="acct/cam-5"),  # streamId of another name
        feed("cam-5", "yesterday"),  # not a time
        feed("cam-6", "2026-11-02", active=False),  # inactive without an end
        feed("cam-7", "2026-11-02", active="yes"),
        {**good, "started": 1700000000},
        "not an object",
        feed("promo--1", "2026-11-02"),  # well formed: refused by the registry, as any name
        feed("cam-8", "2026-11-03"),  # a date alone: its midnight, UTC
    ]
    read = parse_feeds(rows)
    assert [f.stream_name for f in read.feeds] == ["cam-1", "promo--1", "cam-8"]
    assert [r.split(" refused")[0] for r in read.refused] == [f"feed row {i}" for i in range(2, 12)]
    assert all("\x1b" not in r and len(r) < 400 for r in read.refused)
    assert read.feeds[2].started == datetime(2026, 11, 3, tzinfo=UTC)
    assert read.feeds[2].active
    assert read.feeds[2].ended is None
    assert read.feeds[0].ended == datetime(2026, 11, 2, 11, tzinfo=UTC)


def test_literals_are_graphql_input() -> None:
    value = {"OR": [{"name": 'a"b'}, {"active": True}, {"_operators": {"started": {"gte": SINCE}}}]}
    assert literal(value) == (
        '{OR: [{name: "a\\"b"}, {active: true}, '
        '{_operators: {started: {gte: "2026-11-01T00:00:00Z"}}}]}'
    )
