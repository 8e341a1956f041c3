"""The simulator's GraphQL viewer statistics agree with its REST series; its GraphQL faults."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from archiver.simulator import SimConfig, Simulator
from archiver.simulator.buckets import Resolution
from archiver.simulator.faults import HOSTILE_NAME
from archiver.simulator.server import Faults
from tests.simhelpers import get_data, running_simulator
from tests.test_simulator_graphql import (
    CONFIG,
    FEED,
    NOW,
    PAGE_INFO,
    data,
    ended,
    instant,
    post,
    walk,
)

START = NOW.replace(minute=0) - timedelta(days=3)
WINDOW = (
    f'{{_operators: {{from: {{gte: "{START.isoformat()}"}}, to: {{lte: "{NOW.isoformat()}"}}}}}}'
)
STREAM_STAT = "streamId from to active numStarted numEnded"
ACCOUNT_STAT = "from to active numStarted numEnded streams"


def hour(text: str) -> datetime:
    return instant(text).replace(minute=0)


def rest_views(http: httpx.Client, names: list[str]) -> dict[tuple[str, datetime], int]:
    """Views per (stream, hour) with any, from the REST geo series."""
    views: dict[tuple[str, datetime], int] = {}
    for k in range(0, len(names), 10):
        params = [
            ("startDate", START.isoformat()),
            ("stopDate", NOW.isoformat()),
            ("resolution", "Hour"),
            *(("streamNames", n) for n in names[k : k + 10]),
        ]
        geo = get_data(http, "/api/analytics/streams/geo_series", params)["geo"]
        for name, hours in geo.items():
            for at, countries in hours.items():
                total = sum(c["views"] for c in countries.values())
                if total:
                    views[(name, instant(at))] = total
    return views


def test_stream_viewers_are_in_the_hours_the_rest_series_has_views() -> None:
    with running_simulator(CONFIG, start=NOW) as (sim, http):
        stats = walk(http, "streamStatPagination", STREAM_STAT, WINDOW, per_page=100)
        views = rest_views(http, [s.name for s in sim.traffic.streams])
    settled = NOW.replace(minute=0) - timedelta(hours=1)  # hours both sides hold whole
    hours_with_viewers: set[tuple[str, datetime]] = set()
    for row in stats:
        key = (row["streamId"].removeprefix("simacct/"), hour(row["from"]))
        assert row["numStarted"] >= 1
        if key[1] < settled:  # the REST series shows an hour a quarter after it ends
            assert 0 <= row["active"] <= views.get(key, 0), row
        hours_with_viewers.add(key)
    assert len(stats) > 300
    assert {k for k in hours_with_viewers if k[1] < settled} == {k for k in views if k[1] < settled}


def test_viewers_follow_from_views_started_and_ended_and_drop_to_zero_at_the_end() -> None:
    with running_simulator(CONFIG, start=NOW) as (_, http):
        stats = walk(http, "streamStatPagination", STREAM_STAT, WINDOW, per_page=100)
    per_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in stats:
        assert instant(row["to"]) - instant(row["from"]) == timedelta(minutes=5)
        per_stream[row["streamId"]].append(row)
    ends = 0
    for rows in per_stream.values():
        previous: dict[str, Any] | None = None
        for row in rows:
            adjacent = previous is not None and previous["to"] == row["from"]
            before = previous["active"] if adjacent and previous else 0
            if previous is not None and not adjacent:
                assert previous["active"] == 0  # the session ended with nobody watching
                ends += 1
            if previous is not None:  # the window may open in the middle of a session
                assert row["active"] == before + row["numStarted"] - row["numEnded"]
            previous = row
    assert ends > 10


def test_account_stats_are_the_streams_sums_and_count_the_published_streams() -> None:
    config = SimConfig(streams=12, seed=5, redundant_percent=40, unreportable_streams=2)
    with running_simulator(config, start=NOW) as (_, http):
        streams = walk(http, "streamStatPagination", STREAM_STAT, WINDOW, per_page=100)
        account = walk(http, "accountStatPagination", ACCOUNT_STAT, WINDOW, per_page=100)
        feeds = walk(http, "feedPagination", FEED, per_page=100)
    sums: dict[str, list[int]] = {}
    for row in streams:
        total = sums.setdefault(row["from"], [0, 0, 0])
        for k, field in enumerate(("active", "numStarted", "numEnded")):
            total[k] += row[field]
    assert any(r["streamId"].startswith("simacct/promo--") for r in streams)
    assert [r["from"] for r in account] == sorted(sums)
    for row in account:
        assert [row["active"], row["numStarted"], row["numEnded"]] == sums[row["from"]]
        end = instant(row["to"])
        live = {f["name"] for f in feeds if instant(f["started"]) < end < ended(f)}
        assert row["streams"] == len(live), row


def test_stats_named_by_stream_id_are_those_of_the_whole_read() -> None:
    # `streamId` (equal, or `in` a list) narrows which streams the simulator computes, never
    # what it answers: unknown names, another account's and repeats change nothing.
    bounds = f'from: {{gte: "{START.isoformat()}"}}, to: {{lte: "{NOW.isoformat()}"}}'
    with running_simulator(CONFIG, start=NOW) as (sim, http):
        every = walk(http, "streamStatPagination", STREAM_STAT, WINDOW, per_page=100)
        first, *_, last = sorted({r["streamId"] for r in every})  # two streams with stats
        other = next(f"simacct/{s.name}" for s in sim.traffic.streams if s.name not in first)
        wanted = [first, last, last, "simacct/nobody", "another" + other.removeprefix("simacct")]
        listed = f"streamId: {{in: {json.dumps(wanted)}}}"

        def read(filt: str) -> Any:
            return walk(http, "streamStatPagination", STREAM_STAT, filt, per_page=100)

        among = read(f"{{_operators: {{{bounds}, {listed}}}}}")
        both = read(f'{{streamId: "{last}", _operators: {{{bounds}, {listed}}}}}')
        neither = read(f'{{streamId: "{other}", _operators: {{{bounds}, {listed}}}}}')
    assert among == [r for r in every if r["streamId"] in wanted]
    assert both == [r for r in every if r["streamId"] == last]
    assert neither == []
    assert {r["streamId"] for r in among} == {first, last}


def test_stats_are_kept_after_the_feeds_are_gone() -> None:
    old, later = (NOW - timedelta(days=d) for d in (45, 44))
    window = f'{{_operators: {{from: {{gte: "{old.isoformat()}", lt: "{later.isoformat()}"}}}}}}'
    with running_simulator(CONFIG, start=NOW) as (_, http):
        stats = data(http, f"{{streamStatCount(filter: {window})}}")["streamStatCount"]
        account = data(http, f"{{accountStatCount(filter: {window})}}")["accountStatCount"]
        filt = (
            f'{{_operators: {{started: {{gte: "{old.isoformat()}"}}, '
            f'ended: {{lt: "{later.isoformat()}"}}}}}}'
        )
        feeds = data(http, f"{{feedCount(filter: {filt})}}")["feedCount"]
    assert stats > 0
    assert account > 0
    assert feeds == 0


def test_an_errors_fault_answers_errors_beside_partial_data() -> None:
    query = f"{{feedPagination(perPage: 10) {{count items {{name}} {PAGE_INFO}}}}}"
    with running_simulator(CONFIG, start=NOW, faults=Faults(graphql_error_rate=1.0)) as (sim, http):
        faulty = post(http, query)
        sim.faults = Faults()
        whole = data(http, query)
    assert faulty["errors"]
    assert faulty["data"]["feedPagination"]["items"] == whole["feedPagination"]["items"][:5]


def test_a_repeating_page_answers_the_page_before_and_never_ends() -> None:
    def page(http: httpx.Client, number: int) -> Any:
        query = f"{{feedPagination(page: {number}, perPage: 10) {{items {{{FEED}}} {PAGE_INFO}}}}}"
        return data(http, query)["feedPagination"]

    with running_simulator(CONFIG, start=NOW, faults=Faults(graphql_repeat_page=2)) as (_, http):
        first, second, far = page(http, 1), page(http, 2), page(http, 500)
        edges = data(http, "{feedConnection(first: 10) {edges {cursor}}}")["feedConnection"]
        after = edges["edges"][-1]["cursor"]
        again = data(
            http,
            f'{{feedConnection(first: 10, after: "{after}") '
            "{edges {cursor} pageInfo {hasNextPage}}}",
        )["feedConnection"]
    assert second["items"] == first["items"] == far["items"]
    assert second["pageInfo"]["hasNextPage"]
    assert far["pageInfo"]["hasNextPage"]
    assert far["pageInfo"]["pageCount"] < 500
    assert again["edges"] == edges["edges"]
    assert again["pageInfo"]["hasNextPage"]


def test_a_slow_page_is_held_until_released() -> None:
    faults = Faults(graphql_slow_page=2, graphql_slow_seconds=600)
    query = "{feedPagination(page: %d, perPage: 10) {items {name} pageInfo {currentPage}}}"
    answers: dict[int, Any] = {}
    with running_simulator(CONFIG, start=NOW, faults=faults) as (sim, http):
        assert data(http, query % 1)["feedPagination"]["pageInfo"]["currentPage"] == 1
        assert not sim.slow_gate.entered.is_set()
        asker = threading.Thread(target=lambda: answers.update({2: data(http, query % 2)}))
        asker.start()
        assert sim.slow_gate.entered.wait(60)
        assert 2 not in answers  # held: the answer cannot have been sent
        sim.slow_gate.release.set()
        asker.join(60)
    assert answers[2]["feedPagination"]["pageInfo"]["currentPage"] == 2


def test_the_truth_is_what_graphql_served_and_what_it_purged() -> None:
    config = SimConfig(streams=12, seed=5, redundant_percent=40, unreportable_streams=2)
    span = {"start": START.isoformat(), "stop": NOW.isoformat()}
    with running_simulator(config, start=NOW) as (_, http):
        stats = walk(http, "streamStatPagination", STREAM_STAT, WINDOW, per_page=100)
        account = walk(http, "accountStatPagination", ACCOUNT_STAT, WINDOW, per_page=100)
        feeds = walk(http, "feedPagination", FEED, per_page=100)

        def truth(dataset: str, **params: str) -> Any:
            answer = http.get("/_sim/truth", params={"dataset": dataset, **params})
            assert answer.status_code == 200, answer.text
            return answer.json()["rows"]

        stream_truth = truth("stream_viewer_stats", **span)
        account_truth = truth("account_viewer_stats", **span)
        sessions = truth("stream_sessions", start="2026-01-01", stop=NOW.isoformat())
    reportable = [r for r in stats if "--" not in r["streamId"]]
    assert len(reportable) < len(stats)
    assert sorted(
        (r["from"][:19] + "Z", r["streamId"][8:], r["active"], r["numStarted"], r["numEnded"])
        for r in reportable
    ) == [
        (
            t["period_start"],
            t["stream_name"],
            t["active_viewers"],
            t["views_started"],
            t["views_ended"],
        )
        for t in stream_truth
    ]
    assert [
        (r["from"][:19] + "Z", r["active"], r["numStarted"], r["numEnded"], r["streams"])
        for r in account
    ] == [
        (t["period_start"], t["active_viewers"], t["views_started"], t["views_ended"], t["streams"])
        for t in account_truth
    ]
    served = [
        (f["name"], f["started"][:19] + "Z", f["ended"] and f["ended"][:19] + "Z")
        for f in feeds
        if "--" not in f["name"]
    ]
    told = [(s["stream_name"], s["started"], s["ended"]) for s in sessions]
    assert len(told) > len(served)  # the truth keeps what the vendor purged
    cutoff = NOW - timedelta(days=30)
    assert [t for t in told if t[2] is None or instant(t[2]) >= cutoff] == served


@pytest.mark.parametrize(
    ("kind", "resolver", "fields", "broken"),
    [
        (
            "ended_before_started",
            "feedFindMany",
            FEED,
            lambda r: r["ended"] and instant(r["ended"]) < instant(r["started"]),
        ),
        ("hostile_name", "feedFindMany", FEED, lambda r: r["streamId"].endswith(HOSTILE_NAME)),
        ("negative_viewers", "streamStatFindMany", STREAM_STAT, lambda r: r["active"] < 0),
        ("negative_viewers", "accountStatFindMany", ACCOUNT_STAT, lambda r: r["active"] < 0),
        ("off_grid_period", "streamStatFindMany", STREAM_STAT, lambda r: r["from"][15] not in "05"),
        (
            "off_grid_period",
            "accountStatFindMany",
            ACCOUNT_STAT,
            lambda r: r["from"][15] not in "05",
        ),
        (
            "other_account",
            "streamStatFindMany",
            STREAM_STAT,
            lambda r: r["streamId"][:9] == "otheracct",
        ),
        ("other_account", "feedFindMany", "accountId", lambda r: r["accountId"] == "otheracct"),
    ],
)
def test_a_broken_rows_fault_breaks_the_first_row_of_an_answer(
    kind: str, resolver: str, fields: str, broken: Callable[[dict[str, Any]], bool]
) -> None:
    query = (
        f"{{{resolver}(limit: 20, filter: {WINDOW if 'Stat' in resolver else '{}'}) {{{fields}}}}}"
    )
    with running_simulator(CONFIG, start=NOW, faults=Faults(graphql_broken=(kind,))) as (sim, http):
        rows = data(http, query)[resolver]
        sim.faults = Faults()
        sound = data(http, query)[resolver]
    assert broken(rows[0])
    assert not any(broken(r) for r in sound)
    assert rows[1:] == sound[1:]


def test_an_unknown_broken_row_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Faults(graphql_broken=("sideways",))


def test_the_accounts_sums_are_ready_before_the_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # `archiver simulate` sums the account's days before it serves (at 10,000 streams a read
    # summing them took minutes): after `prepare` no read sums a day, and the sums are those
    # a simulator summing on demand answers.
    fresh = Simulator(CONFIG, start=NOW)
    ready = Simulator(CONFIG, start=NOW)
    ready.prepare()

    def summed(day: int) -> Any:
        raise AssertionError(f"day {day} summed on demand")

    monkeypatch.setattr(ready.audience, "_account_day_uncached", summed)
    monkeypatch.setattr(ready.traffic, "_day_account_uncached", summed)
    first = ready.audience.first_instant()
    assert ready.audience.account_stats(first, NOW, NOW) == fresh.audience.account_stats(
        first, NOW, NOW
    )
    assert len(fresh.audience.account_stats(first, NOW, NOW)) > 1000
    for day in range(60):
        start = NOW.replace(hour=0, minute=0) - timedelta(days=day)
        got = ready.traffic.bucket(None, Resolution.DAY, start, visible_until=NOW)
        assert got == fresh.traffic.bucket(None, Resolution.DAY, start, visible_until=NOW)
