"""A hostile vendor: the simulator's answers bent, clocks skewed, bodies endless or dripping.

Each test breaks one promise of the contract and checks, against the simulator's ground
truth, that nothing wrong was stored final and nothing was skipped without a recorded
failure (issue 14).
"""

from __future__ import annotations

import email.utils
import json
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver import cli
from archiver.api.client import AnalyticsClient
from archiver.api.errors import ApiError, AuthenticationError, ResponseFormatError, TransportError
from archiver.api.retry import RetryPolicy, parse_retry_after
from archiver.cycle.report import CycleReport
from archiver.cycle.sync import run_cycle
from archiver.datasets import ACCOUNT_SERIES, BY_DATASET
from archiver.errors import InputError
from archiver.reading import export as export_module
from archiver.rules.plan import Policy
from archiver.simulator import SimConfig, Simulator
from archiver.store import db
from archiver.store.tables import USAGE_TABLES, sync_gaps, sync_runs, sync_state, tracked_streams
from archiver.timeutil import Resolution, next_start
from archiver.vocabulary import ApiRequest
from tests.harness import Harness, compare_with_truth, lost_in_gaps
from tests.simhelpers import TOKEN

# Fast unless marked: the simulator runs in this process; `e2e` marks the tests whose point
# is a real socket (bodies, stalls, cancels, proxies) and the real signal path.

START = datetime(2026, 11, 20, 0, 2, tzinfo=UTC)
Answer = tuple[int, dict[str, str], bytes]
Mutation = Callable[[str, dict[str, list[str]], Answer], Answer]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # cli.main() installs its own handlers on the root logger (on pytest's captured stderr).
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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

            def do_GET(self) -> None:
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
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

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
            # The hostile front forwards GETs only: the feeds' and the viewer stats' bad
            # answers are tested in tests/test_feeds_*.py and tests/test_viewer*.py.
            settings: dict[str, Any] = {
                "api_base_url": front.url,
                "discovery": False,
                "feeds": False,
                "viewers": False,
            }
            settings["streams"] = [s.name for s in sim.traffic.streams]
            settings.update(overrides)
            yield sim, front, Harness(sim, engine, settings)
        finally:
            front.close()


def cycle_at(harness: Harness, host: datetime, vendor: datetime) -> CycleReport:
    """One cycle with the host clock at `host` and the vendor's at `vendor`."""
    harness.sim.set_now(vendor)
    settings = harness.settings(host)
    with AnalyticsClient.from_options(settings.client_options(), sleep=lambda _: None) as client:
        return run_cycle(engine=harness.engine, client=client, settings=settings)


def scopes(engine: Engine) -> dict[tuple[str, str, str], tuple[datetime, str | None]]:
    with engine.connect() as conn:
        return {
            (r.dataset, r.stream_name, r.resolution): (r.watermark, r.last_error)
            for r in conn.execute(sa.select(sync_state))
        }


def assert_exact(sim: Simulator, engine: Engine, first: datetime, last: datetime) -> None:
    """After a clean cycle at `last`, the archive equals the truth, and no gap holds traffic
    (a quiet hour read inside the retention margin is a gap that costs nothing)."""
    # Plain http on loopback: no CA bundle to load (a tenth of a second a test).
    with httpx.Client(base_url=sim.url, verify=False) as http:
        verdict = compare_with_truth(engine=engine, http=http, first_now=first, last_now=last)
        assert verdict.problems == [], "\n".join(verdict.lines)
        assert lost_in_gaps(engine, http) == []


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
        horizon = Policy().reach(endpoint, Resolution(scope[2]), START)
        watermark, error = state[scope]
        assert not report.ok
        assert watermark == horizon, "the watermark of a broken answer moved"
        assert error, f"no failure recorded on {scope}"
        others = [k for k in state if k != scope and k[0] == scope[0] and k[2] == scope[2]]
        assert all(state[k][1] is None for k in others), "a sound scope was failed too"
        assert all(state[k][0] > watermark for k in others), "sound scopes were not stored"
        with engine.connect() as conn:
            runs = conn.execute(sa.select(sync_runs.c.status, sync_runs.c.error)).all()
        assert runs[-1].status == "partial"
        assert runs[-1].error
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


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """For behaviour that does not differ between the databases."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'archive.db'}")
    db.upgrade(engine)
    yield engine
    engine.dispose()


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
    from archiver.api import series as models
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
            horizon = Policy().reach(BY_DATASET["stream_usage"], Resolution.HOUR, START)
            assert state[scope][0] == horizon
            assert "database error" in (state[scope][1] or "")
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
    make: Callable[[Simulator], tuple[Mutation, Scope]], sqlite_engine: Engine
) -> None:
    # Nothing here differs between the databases: the answer is refused before storing.
    run_broken_then_clean(sqlite_engine, make)


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
            block[key.replace("Z", "+00:00")] = dict.fromkeys(block[key], 1)

    return stream_series(name, change), ("stream_usage", name, "Hour")


def _duplicate_json_key(sim: Simulator) -> tuple[Mutation, Scope]:
    name = busiest_stream(sim)

    def mutate(path: str, query: dict[str, list[str]], answer: Answer) -> Answer:
        status, headers, body = answer
        if status != 200 or not path.endswith("account/series") or query["resolution"] != ["Hour"]:
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


# --- item 4: the vendor's clock ----------------------------------------------------------


# Within MAX_SKEW: a host further off plans a doubted cycle by its own clock (a Date that far
# off is no plausible time), so first sightings are stamped late (tests/test_clock_holes.py).
@pytest.mark.parametrize(
    "offset", [timedelta(hours=2), timedelta(hours=23), -timedelta(days=1)], ids=str
)
def test_finality_and_watermarks_follow_the_vendors_clock(
    offset: timedelta, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = sqlite_engine
    with hostile(engine) as (sim, _front, harness):
        report = cycle_at(harness, START + offset, START)
        # A fresh archive has only the host clock to check the vendor's against: the cycle
        # stores what it reads but settles nothing (tests/test_clock_trust.py: persisting).
        assert report.errors == []
        assert report.clock_problem is not None
        assert not report.ok
        assert report.skew is not None
        assert abs(report.skew + offset) < timedelta(seconds=2)
        assert "not believed" in caplog.text
        with engine.connect() as conn:
            skew = conn.execute(sa.select(sync_runs.c.clock_skew_seconds)).scalar_one()
        assert abs(skew + offset.total_seconds()) < 2
        settle = timedelta(minutes=60)
        with engine.connect() as conn:
            for table in USAGE_TABLES.values():
                final = conn.execute(
                    sa.select(table.c.resolution, table.c.period_start).where(table.c.is_final)
                ).all()
                early = [
                    r.period_start
                    for r in final
                    if next_start(r.period_start, Resolution(r.resolution)) + settle > START
                ]
                assert early == [], f"{table.name}: partial buckets stored final"
            gaps = conn.execute(sa.select(sa.func.count()).select_from(sync_gaps)).scalar()
        assert gaps == 0, "gaps recorded for data the vendor still holds"
        assert all(w <= START for w, _ in scopes(engine).values()), "a watermark passed the vendor"
        later = START + timedelta(minutes=15)
        assert cycle_at(harness, later, later).ok
        assert_exact(sim, engine, START, later)


# --- item 5: discovery failures ----------------------------------------------------------


# Set once the test is done with a stalled monitoring answer (the client gave up long before).
RELEASE_MONITORING = threading.Event()


def _monitoring(answer: Answer | None = None, stall: bool = False) -> Mutation:
    def mutate(path: str, query: dict[str, list[str]], original: Answer) -> Answer:
        if not path.endswith("monitoring/streams"):
            return original
        if stall:
            RELEASE_MONITORING.wait(600)
        return answer or original

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _monitoring((500, {}, b'{"status":"error","message":"down","code":500}')),
        _monitoring((200, {}, b'{"status":"success","data":{"pagination":7}}')),
        # 403: the secret lacks monitoring's permission (a 401 ends the cycle:
        # tests/test_first_contact.py).
        _monitoring((403, {}, b'{"status":"fail","data":{"message":"no monitoring scope"}}')),
        pytest.param(_monitoring(stall=True), marks=pytest.mark.e2e),
    ],
    ids=["5xx", "garbage", "forbidden", "timeout"],
)
def test_a_failed_discovery_leaves_the_cycle_to_the_known_streams(
    mutate: Mutation, sqlite_engine: Engine
) -> None:
    engine = sqlite_engine
    RELEASE_MONITORING.clear()
    with hostile(engine, discovery=True, request_timeout_seconds=1.0, max_attempts=2) as (
        sim,
        front,
        harness,
    ):
        front.mutate = mutate
        report = harness.cycle(START)
        RELEASE_MONITORING.set()
        assert [e for e in report.errors if not e.startswith("discovery: ")] == []
        assert len(report.errors) == 1
        assert report.rows > 0
        assert report.requests == report.planned
        front.mutate = None
        later = START + timedelta(minutes=15)
        assert harness.cycle(later).ok
        assert_exact(sim, engine, START, later)


# --- item 6: stream names from the vendor ------------------------------------------------

HOSTILE_NAMES = {
    "x" * 600: "longer than 128",
    "nul\x00name": "control character",
    "red\x1b[31mname": "control character",
    "two\nlines": "control character",
    "rtl\u202eeman": "control character",
    "surrogate\ud800": "control character",
}
FORMULA = '=HYPERLINK("evil.example";"x")'


def _listing(names: list[str]) -> Mutation:
    def mutate(path: str, query: dict[str, list[str]], original: Answer) -> Answer:
        if not path.endswith("monitoring/streams"):
            return original
        status, headers, body = original
        envelope = json.loads(body)
        envelope["data"]["data"] = [{"streamName": n, "live": True} for n in names]
        envelope["data"]["pagination"] = {"totalItems": len(names), "totalPages": 1}
        return status, headers, json.dumps(envelope).encode()

    return mutate


def test_hostile_stream_names_are_refused_and_never_break_a_cycle(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = db.make_engine(database_url)
    try:
        with hostile(engine, discovery=True) as (sim, front, harness):
            front.mutate = _listing([*HOSTILE_NAMES, FORMULA, "fine-name"])
            report = harness.cycle(START)
            assert report.ok, report.errors
            assert set(report.discovered) == {"fine-name", FORMULA}
            for name, reason in HOSTILE_NAMES.items():
                assert reason in report.refused[name]
            with engine.connect() as conn:
                stored = set(conn.execute(sa.select(tracked_streams.c.stream_name)).scalars())
            assert not stored & set(HOSTILE_NAMES)
            front.mutate = None
            later = START + timedelta(minutes=15)
            assert harness.cycle(later).ok
            assert_exact(sim, engine, START, later)
        # On the terminal: escaped; in a CSV export: text, not a formula.
        env_url = database_url
        output = tmp_path / "streams.csv"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ARCHIVER_DATABASE_URL", env_url)
            mp.chdir(tmp_path)
            assert cli.main(["streams", "list"]) == 0
            assert cli.main(["export", "--table", "tracked_streams", "--output", str(output)]) == 0
        listed = capsys.readouterr().out
        assert "\x1b" not in listed
        assert FORMULA in listed
        exported = output.read_text()
        assert f"'{FORMULA}" in exported.replace('""', '"')
    finally:
        engine.dispose()


def test_names_on_the_terminal_are_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    monkeypatch.setenv("ARCHIVER_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["streams", "add", "ok", "bad\x1b]0;pwned\x07"]) == 1
    captured = capsys.readouterr()
    assert "\x1b" not in captured.err
    assert "\x07" not in captured.err
    assert "\\x1b" in captured.err
    # A name stored before names were checked (an older version) is escaped on listing too.
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(tracked_streams).values(
                stream_name="old\x1b[2Jname", source="cli", status="active", added_at=START
            )
        )
    engine.dispose()
    assert cli.main(["streams", "list"]) == 0
    listed = capsys.readouterr().out
    assert "\x1b" not in listed
    assert "old\\x1b[2Jname" in listed


# --- item 8: bounded requests ------------------------------------------------------------


# Serves one connection; `stop` is set when the test is done with the server.
Serve = Callable[[socket.socket, threading.Event], None]


@contextmanager
def raw_server(serve: Serve) -> Iterator[str]:
    """A loopback server answering each connection with `serve` (weird bodies, stalls)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_serve_one, args=(serve, conn, stop), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def _serve_one(serve: Serve, conn: socket.socket, stop: threading.Event) -> None:
    with conn:
        try:
            conn.recv(65536)
            serve(conn, stop)
        except OSError:
            pass


def _endless(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"1000\r\n" + b" " * 4096 + b"\r\n"
    # 1 GiB, far past the cap; the client closing the connection ends it sooner.
    for _ in range(2**18):
        if stop.is_set():
            return
        conn.sendall(chunk)


def _drip(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    # A byte every 0.1 s: each read is far within the read timeout, the whole takes 10 s.
    for _ in range(100):
        conn.sendall(b" ")
        if stop.wait(0.1):
            return


def _stall(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait()


def _telling(serve: Serve, arrived: threading.Event) -> Serve:
    """`serve`, after setting `arrived`: the request is then in flight."""

    def tell(conn: socket.socket, stop: threading.Event) -> None:
        arrived.set()
        serve(conn, stop)

    return tell


def _client(url: str, **options: Any) -> AnalyticsClient:
    defaults: dict[str, Any] = {
        "base_url": url,
        "token": TOKEN,
        "retry": RetryPolicy(max_attempts=1),
        "timeout": 5.0,
    }
    defaults.update(options)
    return AnalyticsClient(**defaults)


HOUR = START.replace(minute=0)
HOUR_REQUEST = ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, HOUR, HOUR + timedelta(hours=1))


@pytest.mark.e2e
def test_an_endless_body_is_cut_at_the_size_cap() -> None:
    with (
        raw_server(_endless) as url,
        _client(url, max_response_bytes=64 * 1024) as client,
        pytest.raises(ResponseFormatError, match="ARCHIVER_MAX_RESPONSE_BYTES"),
    ):
        client.fetch(HOUR_REQUEST)


@pytest.mark.e2e
@pytest.mark.parametrize("serve", [_drip, _stall], ids=["drip", "stall"])
def test_a_slow_drip_or_a_stall_is_cut_at_the_overall_deadline(serve: Serve) -> None:
    # Each byte comes well within the read timeout (or the read timeout is far away): only
    # the overall deadline ends the request (the drip lasts 10 s, the stall until the end).
    with (
        raw_server(serve) as url,
        _client(url, timeout=5.0, deadline_seconds=0.5) as client,
        pytest.raises(TransportError, match="ARCHIVER_REQUEST_DEADLINE_SECONDS"),
    ):
        client.fetch(HOUR_REQUEST)


@pytest.mark.e2e
@pytest.mark.parametrize("serve", [_stall, _drip], ids=["stall", "drip"])
def test_cancel_ends_a_request_in_flight_at_once(serve: Serve) -> None:
    # What SIGTERM does to the service (Service.request_stop cancels the cycle's client).
    # Neither answer ends by itself within the wait below: only the cancel can end it.
    arrived = threading.Event()
    with raw_server(_telling(serve, arrived)) as url, _client(url, timeout=300.0) as client:
        errors: list[BaseException] = []

        def fetch() -> None:
            try:
                client.fetch(HOUR_REQUEST)
            except ApiError as exc:
                errors.append(exc)

        worker = threading.Thread(target=fetch)
        worker.start()
        assert arrived.wait(60), "the request never reached the vendor"
        client.cancel()
        worker.join(60)
        assert not worker.is_alive()
        assert errors
        assert "cancelled" in str(errors[0])


@pytest.mark.e2e
def test_sigterm_ends_the_service_within_seconds_whatever_the_vendor_does(
    tmp_path: Path,
) -> None:
    from archiver.config import get_settings
    from archiver.service.runner import Service

    arrived = threading.Event()
    with raw_server(_telling(_stall, arrived)) as url:
        # The vendor stalls for good and no timeout would end the request within the wait
        # below: only the stop can.
        settings = get_settings(
            database_url=f"sqlite:///{tmp_path / 'a.db'}",
            api_base_url=url,
            api_token=TOKEN,
            request_timeout_seconds=600,
            standby_poll_seconds=0.1,
        )
        engine = db.make_engine(settings.database_url)
        service = Service(settings, engine)
        codes: list[int] = []
        runner = threading.Thread(target=lambda: codes.append(service.run()))
        runner.start()
        assert arrived.wait(60), "the catch-up cycle never asked the vendor"
        service.request_stop(signal.SIGTERM)
        runner.join(60)
        engine.dispose()
        assert not runner.is_alive(), "the service outlived SIGTERM"
        assert codes == [0]


# --- item 9: proxies and secrets ---------------------------------------------------------


@pytest.mark.e2e
def test_a_loopback_vendor_is_never_reached_through_a_proxy(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    hits: list[bytes] = []

    def proxy(conn: socket.socket, stop: threading.Event) -> None:
        hits.append(b"connection")
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

    with raw_server(proxy) as proxy_url:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with hostile(sqlite_engine) as (_sim, _front, harness):
            report = harness.cycle(START)
    assert report.ok, report.errors
    assert hits == [], "the token went to the proxy over plain http"


def test_a_token_echoed_by_the_vendor_reaches_no_message_log_or_table(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    long_text = "the vendor says " + "blah " * 2000

    def echo(path: str, query: dict[str, list[str]], answer: Answer) -> Answer:
        if path.endswith("account/series") and query["resolution"] == ["Hour"]:
            # The token as a time key: it comes back in the format error's text.
            bandwidth = {TOKEN: {"bytesIn": 0, "bytesOut": 0}}
            body = {"status": "success", "data": {"bandwidth": bandwidth}}
            return 200, {}, json.dumps(body).encode()
        if "geo" in path:
            body = {
                "status": "fail",
                "data": {"message": f"bad {TOKEN}", "errors": {TOKEN: [TOKEN]}},
            }
            return 400, {}, json.dumps(body).encode()
        if path.endswith("streams/series"):
            return (
                500,
                {},
                json.dumps({"status": "error", "message": f"{long_text}{TOKEN}"}).encode(),
            )
        return answer

    caplog.set_level(logging.DEBUG)
    engine = db.make_engine(database_url)
    try:
        with hostile(engine, max_attempts=2) as (_sim, front, harness):
            front.mutate = echo
            report = harness.cycle(START)
        assert not report.ok
        assert all(TOKEN not in e and len(e) < 1000 for e in report.errors)
        assert TOKEN not in caplog.text
        with engine.connect() as conn:
            for table in (sync_state, sync_runs):
                text = " ".join(str(v) for row in conn.execute(sa.select(table)) for v in row)
                assert TOKEN not in text
                assert "[redacted]" in text
    finally:
        engine.dispose()


@pytest.mark.parametrize("token", ["abc\r\nX-Evil: 1", "caf\u00e9-secret", "two words"])
def test_a_token_no_header_can_carry_is_one_line(
    token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ApiError) as info:
        AnalyticsClient(base_url="https://api.millicast.com", token=token)
    assert token not in str(info.value)
    monkeypatch.setenv("ARCHIVER_API_TOKEN", token)
    monkeypatch.setenv("ARCHIVER_DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sync"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert token.strip() not in err


# --- item 7: export ----------------------------------------------------------------------


def test_export_never_writes_onto_the_database_or_its_companions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive.db"
    monkeypatch.setenv("ARCHIVER_DATABASE_URL", f"sqlite:///{archive}")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["streams", "add", "cam-1"]) == 0
    before = archive.read_bytes()
    for target in (archive, Path(f"{archive}-wal"), Path(f"{archive}-shm"), Path("archive.db")):
        assert cli.main(["export", "--table", "tracked_streams", "--output", str(target)]) == 1
        assert "refusing to write onto the database" in capsys.readouterr().err
    assert archive.read_bytes() == before
    assert cli.main(["streams", "list"]) == 0
    assert "cam-1" in capsys.readouterr().out


def test_a_failed_export_leaves_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARCHIVER_DATABASE_URL", f"sqlite:///{tmp_path / 'archive.db'}")
    monkeypatch.chdir(tmp_path)
    archive = db.make_engine(f"sqlite:///{tmp_path / 'archive.db'}")
    db.upgrade(archive)  # export only reads: the archive must exist
    archive.dispose()
    output = tmp_path / "out.csv"
    output.write_text("yesterday's export\n")

    def broken(rows: Any, fmt: str, stream: Any) -> int:
        stream.write("half a row")
        raise InputError("the database went away")

    # `export` looks write_export up in archiver.reading.export when it runs.
    monkeypatch.setattr(export_module, "write_export", broken)
    assert cli.main(["export", "--table", "tracked_streams", "--output", str(output)]) == 1
    assert output.read_text() == "yesterday's export\n"
    # No temporary file left behind (the archive's own -wal/-shm files aside).
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("archive.db")) == [
        "out.csv"
    ]


# --- item 11: odd inputs -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "-5", "inf", "NaN", "-inf"])
def test_retry_after_that_is_no_wait_never_disables_the_backoff(value: str) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": value})])
    sleeps: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        try:
            return next(answers)
        except StopIteration:
            return httpx.Response(
                200,
                json={
                    "status": "success",
                    "data": {"bandwidth": {"2026-11-20T00:00:00Z": {"bytesIn": 0, "bytesOut": 0}}},
                },
            )

    with AnalyticsClient(
        base_url="https://api.millicast.com",
        token=TOKEN,
        transport=httpx.MockTransport(answer),
        sleep=sleeps.append,
        rng=lambda: 0.5,
        retry=RetryPolicy(backoff_base=0.5, max_backoff=30.0),
    ) as client:
        client.fetch(HOUR_REQUEST)
    expected = 30.0 if value == "inf" else 0.5
    assert sleeps == [expected]
    seconds = parse_retry_after(value, datetime.now(UTC))
    assert seconds is None or seconds == float("inf")


def test_a_fatal_error_ends_the_work_still_retrying() -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.params["resolution"])
        if request.url.params["resolution"] == "Day":
            return httpx.Response(401, json={"status": "fail", "data": {"message": "no"}})
        return httpx.Response(503)

    client = AnalyticsClient(
        base_url="https://api.millicast.com",
        token=TOKEN,
        transport=httpx.MockTransport(answer),
        retry=RetryPolicy(max_attempts=50, backoff_base=5.0, max_backoff=5.0),
        concurrency=2,
    )
    requests = [
        HOUR_REQUEST,
        ApiRequest(ACCOUNT_SERIES, Resolution.DAY, HOUR, HOUR + timedelta(days=1)),
    ]
    with client, pytest.raises(AuthenticationError):
        list(client.fetch_all(requests))
    assert client.cancelled
    # Still retrying, the Hour request would sleep 5 s fifty times: far past the join.
    for thread in [t for t in threading.enumerate() if t.name.startswith("fetch")]:
        thread.join(60)
        assert not thread.is_alive(), "a fetch thread lingers, retrying"
    assert calls.count("Hour") <= 2


@pytest.mark.parametrize(
    "args",
    [
        ["backfill", "--end", "9999-12-31"],
        ["backfill", "--start", "0001-01-01"],
        ["backfill", "--start", "1969-12-31T23:59:59Z"],
    ],
)
def test_absurd_backfill_dates_are_one_line(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ARCHIVER_API_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "out of range" in err
    assert list(tmp_path.iterdir()) == []
