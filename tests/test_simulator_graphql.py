"""The simulator's GraphQL API over loopback HTTP: rejections, paging, feeds, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from archiver.simulator import SimConfig
from tests.simhelpers import running_simulator

NOW = datetime(2026, 11, 20, 12, 7, tzinfo=UTC)
CONFIG = SimConfig(streams=12, seed=5, redundant_percent=40)
FEED = "accountId streamId name started ended active"
PAGE_INFO = "pageInfo {currentPage perPage pageCount itemCount hasNextPage hasPreviousPage}"


def post(http: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> Any:
    """POST a GraphQL request; the answer's JSON (HTTP 200 asserted)."""
    response = http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


def data(http: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> Any:
    """The `data` of an answer that must carry no `errors`."""
    body = post(http, query, variables)
    assert "errors" not in body, body
    return body["data"]


def walk(http: httpx.Client, resolver: str, fields: str, filt: str = "", per_page: int = 7) -> Any:
    """Every item of a Pagination resolver, page by page until `hasNextPage` is false."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        args = f"page: {page}, perPage: {per_page}" + (f", filter: {filt}" if filt else "")
        answer = data(http, f"{{{resolver}({args}) {{count items {{{fields}}} {PAGE_INFO}}}}}")
        result = answer[resolver]
        info = result["pageInfo"]
        assert info["currentPage"] == page
        assert info["itemCount"] == result["count"]
        assert info["pageCount"] == -(-result["count"] // per_page)
        assert info["hasPreviousPage"] == (page > 1)
        items += result["items"]
        if not info["hasNextPage"]:
            assert page == max(info["pageCount"], 1)
            return items
        page += 1


def when(text: str | None) -> datetime | None:
    """An answer's Date as an instant (None stays None)."""
    return None if text is None else instant(text)


def instant(text: str) -> datetime:
    """An answer's Date as an instant."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ended(feed: dict[str, Any], now: datetime = NOW) -> datetime:
    """When a feed ended, `now` while it runs."""
    return now if feed["ended"] is None else instant(feed["ended"])


@pytest.mark.parametrize(
    "query",
    [
        "{feedPagination {count items {nope}}}",  # unknown field
        '{feedPagination(perPage: "ten") {count}}',  # bad argument type
        "{feedPagination(sort: NAME_SIDEWAYS) {count}}",  # unknown sort
        "{feedPagination(filter: {colour: 1}) {count}}",  # unknown filter field
        '{feedPagination(filter: {started: "yesterday-ish"}) {count}}',  # not a Date
        "{streamStatPagination(filter: {_operators: {from: {after: 1}}}) {count}}",
        "{feedPagination {count",  # syntax
        "{feeds {name}}",  # unknown resolver
    ],
)
def test_a_query_the_vendor_would_reject_answers_errors_and_no_data(query: str) -> None:
    with running_simulator(CONFIG, start=NOW) as (_, http):
        body = post(http, query)
    assert body["data"] is None
    assert body["errors"]
    assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])


def test_a_page_above_the_cap_is_an_errors_answer_and_the_cap_is_an_option() -> None:
    config = SimConfig(streams=4, seed=5, graphql_max_per_page=30)
    with running_simulator(config, start=NOW) as (_, http):
        assert data(http, "{feedPagination(perPage: 30) {count}}")["feedPagination"]["count"]
        assert len(data(http, "{feedFindMany {name}}")["feedFindMany"]) == 30  # the cap
        for query in (
            "{feedPagination(perPage: 31) {count}}",
            "{feedConnection(first: 31) {count}}",
            "{streamStatFindMany(limit: 31) {from}}",
        ):
            body = post(http, query)
            assert body["errors"], query
            assert "30" in body["errors"][0]["message"]


def test_the_endpoint_asks_for_the_token_and_a_post() -> None:
    with running_simulator(CONFIG, start=NOW) as (sim, http):
        assert http.get("/graphql").status_code == 405
        bare = http.post("/graphql", json={"query": "{feedCount}"}, headers={"Authorization": ""})
        assert bare.status_code == 401
        assert http.post("/graphql", content=b"not json").status_code == 400
        assert http.post("/graphql", json={"query": "{feedCount}"}).status_code == 200
        counted = sim.stats_payload()["requests"]["/graphql"]
    assert counted == {"200": 1, "400": 1, "401": 1, "405": 1}  # GraphQL requests are counted


def test_paging_walks_every_feed_the_vendor_holds_in_order() -> None:
    with running_simulator(CONFIG, start=NOW) as (sim, http):
        items = walk(http, "feedPagination", FEED)
        truth = [sim.audience.feed_record(f, NOW) for f in sim.audience.feeds(NOW)]
        edges: list[dict[str, Any]] = []
        after = ""
        while True:
            page = data(
                http,
                f"{{feedConnection(first: 9{after}) {{edges {{cursor node {{{FEED}}}}} "
                "pageInfo {hasNextPage endCursor}}}",
            )["feedConnection"]
            edges += page["edges"]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = f', after: "{page["pageInfo"]["endCursor"]}"'
    assert len(items) == len(truth) > 100
    for item, fact in zip(items, truth, strict=True):
        assert item["streamId"] == f"simacct/{item['name']}" == fact["streamId"]
        assert when(item["started"]) == fact["started"]
        assert when(item["ended"]) == fact["ended"]
        assert item["active"] == fact["active"] == (item["ended"] is None)
    assert [e["node"] for e in edges] == items
    assert [when(i["started"]) for i in items] == sorted(instant(i["started"]) for i in items)


def test_feeds_that_ended_over_30_days_ago_are_gone_and_the_rest_are_served() -> None:
    with running_simulator(CONFIG, start=NOW) as (sim, http):
        served = walk(http, "feedPagination", FEED, per_page=100)
    cutoff = NOW - timedelta(days=30)
    every = [sim.audience.feed_record(f, NOW) for f in sim.audience.feeds(NOW, retained=False)]
    kept = [f for f in every if f["ended"] is None or f["ended"] >= cutoff]
    assert len(kept) < len(every)  # some feeds did age out ...
    assert any(f["started"] < cutoff for f in kept)  # ... and one that straddles is kept
    assert [(i["name"], when(i["started"])) for i in served] == [
        (f["name"], f["started"]) for f in kept
    ]


def test_a_redundantly_published_stream_has_two_feeds_at_once() -> None:
    with running_simulator(CONFIG, start=NOW) as (_, http):
        items = walk(http, "feedPagination", FEED, per_page=100)
    overlapping = [
        (a, b)
        for k, a in enumerate(items)
        for b in items[k + 1 :]
        if a["name"] == b["name"] and instant(b["started"]) < ended(a)
    ]
    assert len(overlapping) >= 5
    for a, b in overlapping:  # the backup starts later and ends no later: keys stay apart
        assert a["started"] != b["started"]
        assert ended(b) <= ended(a)


def test_a_running_feed_is_active_with_no_end_and_ends_later() -> None:
    with running_simulator(CONFIG, start=NOW) as (sim, http):
        live = data(http, f"{{feedFindMany(filter: {{active: true}}) {{{FEED}}}}}")
        live = live["feedFindMany"]
        assert live
        assert all(f["ended"] is None for f in live)
        assert data(http, "{feedCount(filter: {ended: null})}")["feedCount"] == len(live)
        sim.set_now(NOW + timedelta(hours=7))
        name = live[0]["name"]
        started = live[0]["started"]
        later = data(
            http,
            f'{{feedFindOne(filter: {{name: "{name}", started: "{started}"}}) {{{FEED}}}}}',
        )["feedFindOne"]
    assert later["active"] is False
    assert ended(later) > instant(started)


def test_filters_select_what_they_say() -> None:
    with running_simulator(CONFIG, start=NOW) as (_, http):
        every = walk(http, "feedPagination", FEED, per_page=100)
        # Bounds that are some feeds' own times: gt/gte and lt/lte differ on them.
        low, high, end = every[40]["started"], every[80]["started"], every[20]["ended"]
        between = walk(
            http,
            "feedPagination",
            FEED,
            f'{{AND: [{{_operators: {{started: {{gte: "{low}"}}}}}}, '
            f'{{_operators: {{started: {{lt: "{high}"}}}}}}]}}',
        )
        after = walk(http, "feedPagination", FEED, f'{{_operators: {{started: {{gt: "{low}"}}}}}}')
        either = walk(http, "feedPagination", FEED, '{OR: [{name: "303"}, {name: "stream-0001"}]}')
        ended_by = walk(
            http, "feedPagination", FEED, f'{{_operators: {{ended: {{lte: "{end}"}}}}}}'
        )
        by_date = data(http, '{feedCount(filter: {_operators: {started: {lt: "2026-11-12"}}})}')
        newest = data(http, "{feedFindOne(sort: STARTED_DESC) {started}}")["feedFindOne"]
    lo, hi = instant(low), instant(high)
    assert between == [f for f in every if lo <= instant(f["started"]) < hi]
    assert after == [f for f in every if instant(f["started"]) > lo]
    assert either == [f for f in every if f["name"] in ("303", "stream-0001")]
    assert ended_by == [f for f in every if f["ended"] and instant(f["ended"]) <= instant(end)]
    midnight = instant("2026-11-12T00:00:00Z")
    assert by_date["feedCount"] == len([f for f in every if instant(f["started"]) < midnight])
    assert between
    assert after
    assert either
    assert ended_by
    assert newest["started"] == max(every, key=lambda f: instant(f["started"]))["started"]
