"""The smallest unit fails, never the cycle: an undecodable body, a 403 on one endpoint and a
stream nobody asked for each cost only their own request, endpoint or stream (issue #25).

The client's side with httpx fakes; the cycle's against the simulator over loopback HTTP, on
SQLite and PostgreSQL, with the archive compared to the simulator's truth.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.errors import AuthenticationError, PermissionDeniedError, ResponseFormatError
from archiver.datasets import ACCOUNT_GEO_SERIES, ACCOUNT_SERIES, STREAMS_SERIES
from archiver.rules.plan import Selection
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.server import Faults
from archiver.store.tables import USAGE_TABLES, sync_runs, sync_state, tracked_streams
from archiver.timeutil import Resolution
from archiver.vocabulary import ApiRequest, RunKind
from tests.apifakes import fake_client
from tests.harness import Harness, compare_with_truth
from tests.simhelpers import TOKEN

T0 = datetime(2020, 3, 1, tzinfo=UTC)
HOUR = ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1))
GOOD = (
    b'{"status":"success","data":{"bandwidth":{"2020-03-01T00:00:00Z":{"bytesIn":1,"bytesOut":2}}}}'
)
START = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
NAMES = ["stream-0000", "stream-0001", "stream-0002"]
STRANGER = "stream-0004"  # a real stream with traffic, never tracked here


@pytest.mark.parametrize(
    ("encoding", "body", "attempts"),
    [
        ("gzip", GOOD, 1),  # plain JSON labelled gzip: the same every time, not retried
        ("deflate", b"\x00\x01 not deflate", 1),
        ("gzip, gzip", gzip.compress(GOOD, mtime=0), 1),  # decoded once, then not gzip
        ("gzip", gzip.compress(GOOD, mtime=0)[:20], 3),  # a compressed body cut short: retried
    ],
    ids=["plain-as-gzip", "not-deflate", "gzip-once-as-twice", "gzip-cut-short"],
)
def test_a_body_that_does_not_decode_is_a_failed_request(
    encoding: str, body: bytes, attempts: int
) -> None:
    headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}
    client, asked = fake_client(
        lambda r: httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))
    )
    with client:
        with pytest.raises(ResponseFormatError) as info:
            client.fetch(HOUR)
        assert len(asked) == attempts
        (result,) = list(client.fetch_all([HOUR]))  # and in a cycle: a result, not a raise
    assert isinstance(result.error, ResponseFormatError)
    if attempts == 1:
        assert f"Content-Encoding '{encoding}'" in str(info.value)


def test_a_body_in_another_charset_is_a_failed_request() -> None:
    latin = '{"status":"success","data":{"message":"caf\u00e9"}}'.encode("latin-1")
    headers = {"Content-Type": "application/json; charset=latin-1"}
    client, _ = fake_client(lambda r: httpx.Response(200, headers=headers, content=latin))
    with client:
        (result,) = list(client.fetch_all([HOUR]))
    assert isinstance(result.error, ResponseFormatError)


def forbid(paths: tuple[str, ...]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(paths):
            return httpx.Response(403, json={"status": "fail", "data": {"message": "Forbidden"}})
        return httpx.Response(200, content=GOOD)

    return answer


def test_a_403_on_one_endpoint_fails_its_requests_and_names_it() -> None:
    client, asked = fake_client(forbid(("/account/geo_series",)))
    geo = ApiRequest(ACCOUNT_GEO_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1))
    with client:
        results = {r.request: r for r in client.fetch_all([geo, HOUR])}
    assert results[HOUR].error is None
    assert results[HOUR].rows
    error = results[geo].error
    assert isinstance(error, PermissionDeniedError)
    assert not isinstance(error, AuthenticationError)
    assert "lacks the permission to read /api/analytics/account/geo_series" in str(error)
    assert TOKEN not in str(error)
    assert sum(r.url.path.endswith("geo_series") for r in asked) == 1  # not retried


def test_a_403_on_every_endpoint_asked_is_a_refused_secret() -> None:
    client, _ = fake_client(forbid(("/account/geo_series", "/account/series")))
    geo = ApiRequest(ACCOUNT_GEO_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1))
    with client, pytest.raises(AuthenticationError) as info:
        list(client.fetch_all([geo, HOUR, geo]))
    assert "every endpoint asked" in str(info.value)
    assert "ARCHIVER_API_TOKEN" in str(info.value)


def test_a_stream_not_asked_for_costs_only_itself() -> None:
    hours = {"2020-03-01T00:00:00Z": {"bytesIn": 5, "bytesOut": 6}}
    data = {"a": {"bandwidth": hours}, "stranger\n": {"bandwidth": hours}}
    body = {"status": "success", "data": data}
    client, _ = fake_client(lambda r: httpx.Response(200, json=body))
    request = ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1), ("a", "b"))
    with client:
        result = client.fetch(request)
    assert [(r["stream_name"], r["bytes_in"]) for r in result.rows] == [("a", 5)]
    assert list(result.failed) == ["b"]
    assert result.strangers == ["stranger\\n"]  # escaped: it goes to logs and the database


def test_a_stranger_named_after_the_secret_reaches_no_result() -> None:
    # A hostile vendor may echo the secret as a stream name nobody asked for: the name goes to
    # logs and the database, so it is scrubbed like every other word of an answer.
    hours = {"2020-03-01T00:00:00Z": {"bytesIn": 5, "bytesOut": 6}}
    data = {"a": {"bandwidth": hours}, f"x{TOKEN}x": {"bandwidth": hours}}
    body = {"status": "success", "data": data}
    client, _ = fake_client(lambda r: httpx.Response(200, json=body))
    request = ApiRequest(STREAMS_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1), ("a",))
    with client:
        result = client.fetch(request)
    assert len(result.strangers) == 1
    assert TOKEN not in result.strangers[0]
    assert result.strangers[0].startswith("x")


# --- the cycle against the simulator ------------------------------------------------------


def harness(sim: Simulator, engine: Engine, **overrides: Any) -> Harness:
    # Feeds and viewers off: the requests counted here are the REST ones (their GraphQL reads:
    # tests/test_feeds_*.py, tests/test_viewers_cycle.py).
    settings = {
        "streams": NAMES,
        "discovery": False,
        "publish_tokens": False,
        "feeds": False,
        "viewers": False,
        **overrides,
    }
    return Harness(sim, engine, settings)


def rows(engine: Engine, dataset: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(USAGE_TABLES[dataset]))]


def problems(sim: Simulator, engine: Engine, now: datetime) -> dict[str, list[str]]:
    """Per dataset, how the archive differs from the truth (missing, extra, wrong, not final)."""
    with httpx.Client(base_url=sim.url) as http:
        verdict = compare_with_truth(engine=engine, http=http, first_now=now, last_now=now)
    found: dict[str, list[str]] = {}
    for problem in verdict.problems:
        found.setdefault(problem.split()[0], []).append(problem)
    return found


def state_errors(engine: Engine, dataset: str) -> list[str | None]:
    with engine.connect() as conn:
        query = sa.select(sync_state.c.last_error).where(sync_state.c.dataset == dataset)
        return list(conn.execute(query).scalars())


def simulator(faults: Faults) -> Simulator:
    config = SimConfig(streams=6, seed=7, origin=START - timedelta(days=30))
    return Simulator(config, token=TOKEN, start=START, faults=faults)


def test_a_body_mislabelled_gzip_fails_its_endpoint_and_the_cycle_goes_on(engine: Engine) -> None:
    with simulator(Faults(mislabelled_gzip=("account/geo_series",))) as sim:
        run = harness(sim, engine)
        report = run.cycle(START, kind=RunKind.BACKFILL)
        assert report.failed == sum(1 for e in report.errors if "Content-Encoding 'gzip'" in e)
        assert report.failed > 0
        assert report.requests == report.planned
        assert rows(engine, "account_geo_usage") == []
        assert all(
            "Content-Encoding" in (e or "") for e in state_errors(engine, "account_geo_usage")
        )
        assert set(problems(sim, engine, START)) == {"account_geo_usage"}  # the rest is the truth
        sim.faults = Faults()
        later = START + timedelta(minutes=15)
        assert run.cycle(later).ok
        assert problems(sim, engine, later) == {}


def test_a_403_on_one_endpoint_costs_only_that_endpoint(engine: Engine) -> None:
    faults = Faults(forbidden=("streams/series", "monitoring/streams", "publish_token/list"))
    with simulator(faults) as sim:
        run = harness(sim, engine, discovery=True, publish_tokens=True)
        for moment in (START, START + timedelta(minutes=15), START + timedelta(minutes=30)):
            report = run.cycle(moment)
            assert not report.ok
            assert any("discovery:" in e and "monitoring/streams" in e for e in report.errors)
            assert any(e.startswith("publish tokens:") for e in report.errors)
            assert any(
                "permission to read /api/analytics/streams/series" in e for e in report.errors
            )
            assert rows(engine, "stream_usage") == []
            assert set(problems(sim, engine, moment)) == {"stream_usage"}
        assert rows(engine, "stream_geo_usage")
        assert rows(engine, "account_geo_usage")


@pytest.mark.parametrize(
    "selection",
    [None, Selection(start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime(2020, 1, 2, tzinfo=UTC))],
    ids=["plan", "nothing-planned"],  # then discovery and the clock check are all it asked
)
def test_a_403_on_every_endpoint_ends_the_cycle_as_a_refused_secret(
    engine: Engine, selection: Selection | None
) -> None:
    everything = ("analytics/account/series", "account/geo_series", "streams/series")
    faults = Faults(
        forbidden=(
            *everything,
            "streams/geo_series",
            "tracking/streams/series",
            "monitoring/streams",
        )
    )
    with simulator(faults) as sim:
        run = harness(sim, engine, discovery=True)
        with pytest.raises(AuthenticationError) as info:
            run.cycle(START, selection=selection)
    assert "every endpoint asked (403 on " in str(info.value)
    with engine.connect() as conn:
        (status, error) = conn.execute(sa.select(sync_runs.c.status, sync_runs.c.error)).one()
    assert (status, error) == ("failed", str(info.value))


def test_an_unrequested_stream_is_reported_and_the_requested_are_stored(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with simulator(Faults(stranger_stream=STRANGER)) as sim:
        run = harness(sim, engine)
        report = run.cycle(START, kind=RunKind.BACKFILL)
        strangers = [e for e in report.errors if f"'{STRANGER}', which was not asked for" in e]
        assert strangers
        assert len(strangers) == len(report.errors)
        assert report.failed == 0
        assert any(
            STRANGER in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records
        )
        for dataset in ("stream_usage", "stream_geo_usage"):
            stored = {r["stream_name"] for r in rows(engine, dataset)}
            assert stored
            assert STRANGER not in stored
        assert problems(sim, engine, START) == {}  # every requested stream equals the truth
        with engine.connect() as conn:
            tracked = set(conn.execute(sa.select(tracked_streams.c.stream_name)).scalars())
        assert tracked == set(NAMES)
        with httpx.Client(base_url=sim.url) as http:
            truth = http.get(
                "/_sim/truth",
                params={
                    "dataset": "stream_usage",
                    "resolution": "Hour",
                    "stream": STRANGER,
                    "start": "2026-11-13T00:00:00Z",
                    "stop": "2026-11-20T12:00:00Z",
                },
            ).json()["rows"]
        assert truth  # the stranger had traffic: storing it would have shown
