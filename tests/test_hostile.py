"""A hostile vendor: the simulator's answers bent, clocks skewed, bodies endless or dripping.

Each test breaks one promise of the contract and checks, against the simulator's ground
truth, that nothing wrong was stored final and nothing was skipped without a recorded
failure (issue 14).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import email.utils
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver import cli
from archiver.api.client import AnalyticsClient, RetryPolicy, parse_retry_after
from archiver.api.endpoints import ACCOUNT_SERIES, BY_DATASET, ApiRequest
from archiver.api.errors import ApiError, AuthenticationError, ResponseFormatError, TransportError
from archiver.plan import Policy
from archiver.simulator import SimConfig, Simulator
from archiver.store import db
from archiver.store.tables import stream_usage, sync_gaps, sync_runs, sync_state, tracked_streams
from archiver.sync import CycleReport, run_cycle
from archiver.timeutil import Resolution, next_start
from tests.harness import Harness, compare_with_truth
from tests.simhelpers import TOKEN

START = datetime(2026, 11, 20, 0, 2, tzinfo=UTC)
Answer = tuple[int, dict[str, str], bytes]
Mutation = Callable[[str, dict[str, list[str]], Answer], Answer]


class Front:
    """A loopback vendor that answers with the simulator's answers, bent by `mutate`.

    Its `Date` header is the simulator's clock (plus `date_offset`), as the vendor's is its own.
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.mutate: Mutation | None = None
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def date_time_string(self, timestamp: float | None = None) -> str:
                return email.utils.format_datetime(front.sim.now(), usegmt=True)

            def do_GET(self) -> None:  # noqa: N802 (http.server's spelling)
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = front.sim.answer("GET", self.path, headers, b"")
                if front.mutate is not None:
                    query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                    answer = front.mutate(urlsplit(self.path).path, query, answer)
                status, out_headers, body = answer
                self.send_response(status)
                for name, value in out_headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def on_json(path_end: str, change: Callable[[Any, dict[str, list[str]]], None]) -> Mutation:
    """A mutation of the `data` of successful answers on paths ending with `path_end`."""

    def mutate(path: str, query: dict[str, list[str]], answer: Answer) -> Answer:
        status, headers, body = answer
        if status != 200 or not path.endswith(path_end):
            return answer
        envelope = json.loads(body)
        change(envelope["data"], query)
        return status, headers, json.dumps(envelope).encode()

    return mutate


@contextmanager
def hostile(
    engine: Engine, config: SimConfig | None = None, **overrides: Any
) -> Iterator[tuple[Simulator, Front, Harness]]:
    config = config or SimConfig(streams=4, seed=3, initial_streams=4, origin=START)
    with Simulator(config, token=TOKEN, start=START) as sim:
        front = Front(sim)
        try:
            settings: dict[str, Any] = {"api_base_url": front.url, "discovery": False}
            settings["streams"] = [s.name for s in sim.traffic.streams]
            settings.update(overrides)
            yield sim, front, Harness(sim, engine, settings)
        finally:
            front.close()


def cycle_at(harness: Harness, host: datetime, vendor: datetime) -> CycleReport:
    """One cycle with the host clock at `host` and the vendor's at `vendor`."""
    harness.sim.set_now(vendor)
    settings = harness.settings(host)
    with AnalyticsClient.from_settings(settings, sleep=lambda _: None) as client:
        return run_cycle(engine=harness.engine, client=client, settings=settings)


def scopes(engine: Engine) -> dict[tuple[str, str, str], tuple[datetime, str | None]]:
    with engine.connect() as conn:
        return {
            (r.dataset, r.stream_name, r.resolution): (r.watermark, r.last_error)
            for r in conn.execute(sa.select(sync_state))
        }


def assert_exact(sim: Simulator, engine: Engine, first: datetime, last: datetime) -> None:
    """After a clean cycle at `last`, the archive equals the truth, gaps none."""
    with httpx.Client(base_url=sim.url) as http:
        verdict = compare_with_truth(engine=engine, http=http, first_now=first, last_now=last)
    assert verdict.problems == [], "\n".join(verdict.lines)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sync_gaps)).scalar() == 0


def busiest_stream(sim: Simulator) -> str:
    """The stream with the most traffic in the week before START (its loss would show)."""
    hours = range(int(START.timestamp()) // 3600 - 24 * 7, int(START.timestamp()) // 3600)
    counts = {
        s.name: sum(1 for h in hours if sim.traffic.stream_hour(s.index, h) is not None)
        for s in sim.traffic.streams
    }
    return max(counts, key=lambda n: counts[n])


def first_busy_bucket(buckets: dict[str, dict[str, int]]) -> str:
    return next(key for key, value in buckets.items() if any(value.values()))


Scope = tuple[str, str, str]


def run_broken_then_clean(
    engine: Engine, make: Callable[[Simulator], tuple[Mutation, Scope]]
) -> CycleReport:
    """A hostile cycle, checks on it, then a clean cycle; returns the hostile cycle's report.

    The broken scope keeps its first watermark and records the failure; the sound scopes of
    the same dataset and resolution are stored; after a clean cycle the archive is exact.
    """
    with hostile(engine) as (sim, front, harness):
        front.mutate, scope = make(sim)
        report = harness.cycle(START)
        state = scopes(engine)
        endpoint = BY_DATASET[scope[0]]
        horizon = Policy().horizon(endpoint, Resolution(scope[2]), START)
        watermark, error = state[scope]
        assert not report.ok
        assert watermark == horizon, "the watermark of a broken answer moved"
        assert error, f"no failure recorded on {scope}"
        others = [k for k in state if k != scope and k[0] == scope[0] and k[2] == scope[2]]
        assert all(state[k][1] is None for k in others), "a sound scope was failed too"
        assert all(state[k][0] > watermark for k in others), "sound scopes were not stored"
        with engine.connect() as conn:
            runs = conn.execute(sa.select(sync_runs.c.status, sync_runs.c.error)).all()
        assert runs[-1].status == "partial" and runs[-1].error
        front.mutate = None
        later = START + timedelta(minutes=15)
        again = harness.cycle(later)
        assert again.ok, again.errors
        assert scopes(engine)[scope][1] is None
        assert_exact(sim, engine, START, later)
        return report


def stream_series(name: str, change: Callable[[dict[str, Any]], None]) -> Mutation:
    """Bend the hourly `streams/series` part of one stream."""

    def apply(data: Any, query: dict[str, list[str]]) -> None:
        if query["resolution"] == ["Hour"] and name in data:
            change(data[name])

    return on_json("streams/series", apply)


# --- items 1-3: strict answers -----------------------------------------------------------


def test_an_integer_beyond_int64_fails_only_its_stream(database_url: str) -> None:
    def make(sim: Simulator) -> tuple[Mutation, Scope]:
        name = busiest_stream(sim)

        def change(series: dict[str, Any]) -> None:
            bandwidth = series["bandwidth"]
            bandwidth[first_busy_bucket(bandwidth)]["bytesIn"] = 2**63

        return stream_series(name, change), ("stream_usage", name, "Hour")

    engine = db.make_engine(database_url)
    try:
        report = run_broken_then_clean(engine, make)
    finally:
        engine.dispose()
    assert any("less than or equal to 9223372036854775807" in e for e in report.errors)


def test_a_database_refusal_fails_only_its_response(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the parser (as if it let a value through), the database refuses the row: on
    # SQLite an OverflowError from the driver, on PostgreSQL an error from the COPY path.
    from archiver.api import models
    from archiver.store import upsert

    monkeypatch.setattr(upsert, "COPY_THRESHOLD", 1)
    victim: list[str] = []
    parse = models._usage_rows

    def poisoned(series: Any, window: Any, endpoint: str) -> list[dict[str, Any]]:
        rows = parse(series, window, endpoint)
        if victim and victim[0] in endpoint and window.resolution is Resolution.HOUR and rows:
            rows[0]["bytes_in"] = 2**64
        return rows

    monkeypatch.setattr(models, "_usage_rows", poisoned)

    def make(sim: Simulator) -> tuple[Mutation, Scope]:
        victim.append(busiest_stream(sim))

        def no_change(path: str, query: dict[str, list[str]], answer: Answer) -> Answer:
            return answer

        return no_change, ("stream_usage", victim[0], "Hour")

    engine = db.make_engine(database_url)
    try:
        with hostile(engine) as (sim, front, harness):
            front.mutate, scope = make(sim)
            report = harness.cycle(START)
            state = scopes(engine)
            assert not report.ok
            assert any("database error" in e for e in report.errors), report.errors
            horizon = Policy().horizon(BY_DATASET["stream_usage"], Resolution.HOUR, START)
            assert state[scope][0] == horizon
            assert state[scope][1] and "database error" in state[scope][1]
            stored = [k for k, v in state.items() if k[0] == "stream_usage" and v[0] > horizon]
            assert stored, "one refused response stopped the others"
            victim.clear()
            later = START + timedelta(minutes=15)
            assert harness.cycle(later).ok
            assert_exact(sim, engine, START, later)
    finally:
        engine.dispose()


def _drop_stream(sim: Simulator) -> tuple[Mutation, Scope]:
    name = busiest_stream(sim)

    def change(data: Any, query: dict[str, list[str]]) -> None:
        if query["resolution"] == ["Hour"]:
            data.pop(name, None)

    return on_json("streams/series", change), ("stream_usage", name, "Hour")


def _drop_bucket(sim: Simulator) -> tuple[Mutation, Scope]:
    def change(data: Any, query: dict[str, list[str]]) -> None:
        if query["resolution"] == ["Hour"]:
            key = first_busy_bucket(data["bandwidth"])
            for block in data.values():
                block.pop(key, None)

    return on_json("account/series", change), ("account_usage", "", "Hour")


def _empty_geo(sim: Simulator) -> tuple[Mutation, Scope]:
    def change(data: Any, query: dict[str, list[str]]) -> None:
        if query["resolution"] == ["Hour"]:
            data.clear()

    return on_json("account/geo_series", change), ("account_geo_usage", "", "Hour")


@pytest.mark.parametrize("make", [_drop_stream, _drop_bucket, _empty_geo])
def test_an_answer_missing_a_stream_a_bucket_or_everything_is_a_failure(
    make: Callable[[Simulator], tuple[Mutation, Scope]], engine: Engine
) -> None:
    run_broken_then_clean(engine, make)


def _without_metric(sim: Simulator) -> tuple[Mutation, Scope]:
    name = busiest_stream(sim)

    def change(series: dict[str, Any]) -> None:
        del series["bandwidth"][first_busy_bucket(series["bandwidth"])]["bytesOut"]

    return stream_series(name, change), ("stream_usage", name, "Hour")


def _negative(sim: Simulator) -> tuple[Mutation, Scope]:
    name = busiest_stream(sim)

    def change(series: dict[str, Any]) -> None:
        series["bandwidth"][first_busy_bucket(series["bandwidth"])]["bytesOut"] = -5

    return stream_series(name, change), ("stream_usage", name, "Hour")


def _bucket_twice(sim: Simulator) -> tuple[Mutation, Scope]:
    name = busiest_stream(sim)

    def change(series: dict[str, Any]) -> None:
        for block in series.values():
            key = first_busy_bucket(series["bandwidth"])
            block[key.replace("Z", "+00:00")] = {k: 1 for k in block[key]}

    return stream_series(name, change), ("stream_usage", name, "Hour")


def _duplicate_json_key(sim: Simulator) -> tuple[Mutation, Scope]:
    name = busiest_stream(sim)

    def mutate(path: str, query: dict[str, list[str]], answer: Answer) -> Answer:
        status, headers, body = answer
        if status != 200 or not path.endswith("account/series") or query["resolution"] != [
            "Hour"
        ]:
            return answer
        data = json.loads(body)["data"]
        key = first_busy_bucket(data["bandwidth"])
        # The same bucket twice in one object: json.loads would silently keep the last.
        text = body.decode()
        first = f'"{key}":{{'
        at = text.index(first)
        text = text[:at] + f'"{key}":{{"bytesOut":1,"bytesIn":1}},' + text[at:]
        return status, headers, text.encode()

    del name
    return mutate, ("account_usage", "", "Hour")


@pytest.mark.parametrize("make", [_without_metric, _negative, _bucket_twice, _duplicate_json_key])
def test_a_missing_metric_a_negative_value_or_a_bucket_twice_is_a_failure(
    make: Callable[[Simulator], tuple[Mutation, Scope]], database_url: str
) -> None:
    engine = db.make_engine(database_url)
    try:
        run_broken_then_clean(engine, make)
    finally:
        engine.dispose()
