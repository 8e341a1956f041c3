"""Stream sources end to end: the simulator's tokens, monitoring rule and webhooks, and the
archive's tokens, webhook receiver and attribution, judged against the simulator's truth."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.cycle.tokens import load_patterns, matching
from archiver.reading.attribution import read_attribution, usage_attribution
from archiver.rules.plan import Policy
from archiver.service.webhooks import WebhookReceiver, WebhookServer
from archiver.simulator import SimConfig, Simulator, Traffic, vendor
from archiver.simulator.server import WebhookTarget
from archiver.simulator.traffic import EPOCH
from archiver.store.tables import stream_usage, token_patterns, tracked_streams
from archiver.timeutil import Resolution, ceil, format_iso
from archiver.vocabulary import RunKind
from tests.harness import Harness, compare_with_truth, quarter_hours
from tests.simhelpers import TOKEN, get_data, running_simulator

NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
SECRET = base64.b64encode(b"simulated webhook secret").decode()
A = "/api/analytics/"
POLICY = Policy(margin=timedelta(0))
DAY = int((NOW - EPOCH).total_seconds()) // 86400


def token_pages(http: httpx.Client, size: int) -> list[list[dict[str, Any]]]:
    pages = []
    for page in range(1, 50):
        response = http.get("/api/publish_token/list", params={"page": page, "itemsOnPage": size})
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        pages.append(data)
        if not data:
            return pages
    raise AssertionError("the token list never ended")


def test_publish_tokens_page_until_an_empty_page() -> None:
    config = SimConfig(streams=10, seed=3, exact_token_streams=7, names_per_exact_token=3)
    with running_simulator(config, start=NOW) as (_, http):
        pages = token_pages(http, 2)
        assert http.get("/api/publish_token/list", headers={"Authorization": "x"}).is_error
    tokens = [t for page in pages for t in page]
    assert [len(p) for p in pages] == [2, 2, 2, 0]  # 3 exact tokens, 3 regex tokens
    exact = [s["streamName"] for t in tokens for s in t["streams"] if not s["isRegex"]]
    assert exact == vendor.exact_token_names(Traffic(config))
    assert len(set(exact)) == 7
    regex = [s["streamName"] for t in tokens for s in t["streams"] if s["isRegex"]]
    assert regex
    assert all(isinstance(t["label"], str) for t in tokens)


def test_minute_sessions_keep_every_sum_exact() -> None:
    config = SimConfig(streams=12, seed=11, session_minutes=(5, 360))
    traffic = Traffic(config)
    lengths = [
        s.end - s.start
        for st in traffic.streams
        for day in range(DAY - 10, DAY + 10)
        if (s := traffic.session(st.index, day)) is not None
    ]
    assert min(lengths) < 60 < max(lengths) <= 360
    with running_simulator(config, start=datetime(2026, 12, 1, 3, tzinfo=UTC)) as (_, http):
        day = [("startDate", "2026-11-30"), ("stopDate", "2026-12-01")]
        hours = get_data(
            http,
            A + "account/series",
            [
                ("startDate", "2026-11-30T00:00:00Z"),
                ("stopDate", "2026-12-01T00:00:00Z"),
                ("resolution", "Hour"),
            ],
        )
        days = get_data(http, A + "account/series", [*day, ("resolution", "Day")])
        names = [s.name for s in traffic.streams]
        streams = {}
        for batch in (names[:10], names[10:]):
            streams.update(
                get_data(
                    http,
                    A + "streams/series",
                    [*day, ("resolution", "Day"), *(("streamNames", n) for n in batch)],
                )
            )
    hour_out = sum(v["bytesOut"] for v in hours["bandwidth"].values())
    day_out = sum(v["bytesOut"] for v in days["bandwidth"].values())
    stream_out = sum(v["bytesOut"] for s in streams.values() for v in s["bandwidth"].values())
    assert hour_out == day_out == stream_out > 0


def test_monitoring_lists_only_streams_that_started_within_the_hour() -> None:
    config = SimConfig(streams=40, seed=5, session_minutes=(5, 360))
    traffic = Traffic(config)
    # A session longer than an hour: listed just after its start, not an hour later.
    stream, session = next(
        (st, s)
        for st in traffic.streams
        for day in range(DAY - 10, DAY + 10)
        if (s := traffic.session(st.index, day)) is not None and s.end - s.start > 120
    )
    started = session.started_at()
    with running_simulator(config, start=started) as (sim, http):
        listed = []
        for offset in (timedelta(0), timedelta(minutes=59), timedelta(minutes=61)):
            sim.set_now(started + offset)
            body = http.get("/api/monitoring/streams", params={"itemsOnPage": 1000}).json()
            listed.append({s["streamName"]: s for s in body["data"]["data"]})
    assert stream.name in listed[0]
    assert listed[0][stream.name]["live"] is True
    assert listed[0][stream.name]["startTime"] == started.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert stream.name in listed[1]
    assert stream.name not in listed[2]  # still live, but created more than an hour ago


def test_webhooks_are_signed_sent_once_and_some_are_lost() -> None:
    received: list[tuple[bytes, str]] = []
    config = SimConfig(streams=30, seed=9, session_minutes=(5, 360))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["X-Millicast-Signature"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/webhooks"
    target = WebhookTarget(url=url, secret=SECRET, loss_rate=0.2, seed=4)
    try:
        with Simulator(config, token=TOKEN, start=NOW, webhook=target) as sim:
            sim.set_now(NOW + timedelta(hours=12))
            sim.set_now(NOW + timedelta(hours=6))  # backwards: nothing is sent again
            sim.set_now(NOW + timedelta(days=1))
            log = list(sim.webhook_log)
    finally:
        server.shutdown()
        server.server_close()
    events = sim.traffic.session_events(NOW, NOW + timedelta(days=1))
    assert [(e.at, e.event, e.stream) for e in log] == [(a, ev, st.name) for a, ev, st, _ in events]
    lost = [e for e in log if e.lost]
    assert 0.1 < len(lost) / len(log) < 0.3
    assert len(received) == len(log) - len(lost)
    key = base64.b64decode(SECRET)
    for body, signature in received:
        assert signature == "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
        event = json.loads(body)
        assert event["type"] == "feeds"
        assert event["event"] in ("started", "ended")
    sent = [json.loads(b) for b, _ in received]
    assert len({(e["event"], e["data"]["feedId"]) for e in sent}) == len(sent)  # once each


def attribution_rows(
    engine: Engine, resolution: Resolution, start: datetime, stop: datetime
) -> dict[str, tuple[int, ...]]:
    view = usage_attribution
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(view).where(
                view.c.resolution == resolution.value,
                view.c.period_start >= start,
                view.c.period_start < stop,
            )
        )
        return {
            format_iso(r.period_start): (
                r.account_bytes_out,
                r.streams_bytes_out,
                r.unattributed_bytes_out,
                r.unattributed_bytes_in,
            )
            for r in rows
        }


def truth_attribution(
    http: httpx.Client, resolution: Resolution, start: datetime, stop: datetime, sources: str = ""
) -> dict[str, tuple[int, ...]]:
    params = {
        "dataset": "attribution",
        "resolution": resolution.value,
        "start": format_iso(start),
        "stop": format_iso(stop),
    }
    if sources:
        params["sources"] = sources
    response = http.get("/_sim/truth", params=params)
    assert response.status_code == 200, response.text
    return {
        r["period_start"]: (
            r["account_bytes_out"],
            r["streams_bytes_out"],
            r["unattributed_bytes_out"],
            r["unattributed_bytes_in"],
        )
        for r in response.json()["rows"]
    }


@pytest.mark.e2e
def test_exact_token_names_are_archived_seven_days_back_on_a_fresh_install(
    engine: Engine,
) -> None:
    config = SimConfig(streams=12, seed=21, exact_token_streams=5, session_minutes=(5, 360))
    exact = vendor.exact_token_names(Traffic(config))
    assert len(set(exact)) == 5
    with Simulator(config, token=TOKEN, start=NOW) as sim:
        # Discovery off: the exact names are never seen live by this install.
        # Feeds off: the names counted here are the tokens' alone.
        harness = Harness(
            sim, engine, {"discovery": False, "feeds": False, "retention_margin_minutes": 0}
        )
        report = harness.cycle(NOW, kind=RunKind.BACKFILL)
        assert report.ok, report.errors
        with engine.connect() as conn:
            sources = {
                r.stream_name: r.source
                for r in conn.execute(
                    sa.select(tracked_streams.c.stream_name, tracked_streams.c.source)
                )
            }
            oldest = conn.execute(sa.select(sa.func.min(stream_usage.c.period_start))).scalar()
            patterns = load_patterns(conn)
            assert conn.execute(sa.select(sa.func.count()).select_from(token_patterns)).scalar()
        assert sources == dict.fromkeys(exact, "token")
        assert oldest is not None
        assert oldest < NOW - timedelta(days=6, hours=12)
        assert [p.describe() for p in matching("stream-0007", patterns)] == [
            "studio (stream-[0-9]+)"
        ]
        with httpx.Client(base_url=sim.url) as http:
            verdict = compare_with_truth(
                engine=engine, http=http, first_now=NOW, last_now=NOW, policy=POLICY
            )
            print("\n".join(verdict.lines))
            assert verdict.problems == []
            # The usage no archived stream explains equals the traffic of the streams no
            # source revealed, bucket for bucket.
            for resolution in (Resolution.HOUR, Resolution.DAY):
                # Days reach back past the per-stream window: there the account's
                # usage is all unexplained, in the archive as in the truth.
                back = timedelta(days=7 if resolution is Resolution.HOUR else 30)
                start = ceil(NOW - back, resolution)
                stop = POLICY.first_unfinal(resolution, NOW)
                got = attribution_rows(engine, resolution, start, stop)
                want = truth_attribution(http, resolution, start, stop)
                assert got == want
                assert any(row[2] > 0 for row in got.values())  # the other 7 streams
        with engine.connect() as conn:
            share = read_attribution(conn, now=NOW).explained_share
        assert share is not None
        assert 0 < share < 1


@pytest.mark.e2e
def test_feed_webhooks_register_streams_as_their_sessions_start(engine: Engine) -> None:
    config = SimConfig(streams=15, seed=13, session_minutes=(5, 360))
    receiver = WebhookReceiver(engine=engine, secret=SECRET, now=lambda: clock[0])
    server = WebhookServer(receiver, address="127.0.0.1", port=0).start()
    clock = [NOW]
    target = WebhookTarget(url=server.url, secret=SECRET)
    try:
        with Simulator(config, token=TOKEN, start=NOW, webhook=target) as sim:
            # Feeds off: the names counted here are the webhooks' alone.
            harness = Harness(
                sim, engine, {"discovery": False, "publish_tokens": False, "feeds": False}
            )
            for moment in quarter_hours(NOW, NOW + timedelta(hours=12)):
                clock[0] = moment
                assert harness.cycle(moment).ok
            revealed = sim.revealed_payload()["streams"]
    finally:
        server.stop()
    started = {
        st.name for _, ev, st, _ in sim.traffic.session_events(NOW, NOW + timedelta(hours=12))
    }
    with engine.connect() as conn:
        sources = {
            r.stream_name: r.source
            for r in conn.execute(
                sa.select(tracked_streams.c.stream_name, tracked_streams.c.source)
            )
        }
    reportable = {n for n in started if "--" not in n}
    assert reportable
    assert set(sources) == reportable == set(revealed)
    assert set(sources.values()) == {"webhook"}


@pytest.mark.e2e
def test_a_failing_token_list_is_logged_and_the_cycle_goes_on(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    from archiver.api.client import AnalyticsClient
    from archiver.api.errors import ServerError
    from archiver.cycle.sync import run_cycle

    class NoTokens(AnalyticsClient):
        def publish_tokens(self, *, page_size: int = 100, max_pages: int = 1000) -> Any:
            raise ServerError("publish_token/list page 1: server error 500: boom", status_code=500)

    config = SimConfig(streams=6, seed=2, exact_token_streams=3)
    with Simulator(config, token=TOKEN, start=NOW) as sim:
        # Feeds off: the names counted here are the configured one and the tokens'.
        harness = Harness(
            sim, engine, {"streams": ["stream-0001"], "discovery": False, "feeds": False}
        )
        settings = harness.settings(NOW)
        with NoTokens.from_options(settings.client_options(), sleep=lambda _: None) as client:
            report = run_cycle(engine=engine, client=client, settings=settings, kind=RunKind.SYNC)
    assert report.errors == ["publish tokens: publish_token/list page 1: server error 500: boom"]
    assert report.planned > 0
    assert report.requests == report.planned
    assert report.failed == 0
    assert "reading publish tokens failed" in caplog.text
    with engine.connect() as conn:
        names = set(conn.execute(sa.select(tracked_streams.c.stream_name)).scalars())
    assert names == {"stream-0001"}


@pytest.mark.e2e
def test_a_real_clock_sends_webhooks_as_time_passes() -> None:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    target = WebhookTarget(url=f"http://127.0.0.1:{server.server_address[1]}/", secret=SECRET)
    config = SimConfig(streams=30, seed=9, session_minutes=(5, 360))
    try:
        sim = Simulator(config, token=TOKEN, clock="real", webhook=target)
        # As if the simulator had been up for a day: the ticker catches up at once.
        sim.webhooks.until = sim.now() - timedelta(days=1)
        with sim:
            deadline = datetime.now(UTC) + timedelta(seconds=20)
            while not sim.webhook_log and datetime.now(UTC) < deadline:
                threading.Event().wait(0.1)
        assert sim._ticker is not None
        sim._ticker.join(20)  # stopping ends the ticker after the batch in flight
        log = list(sim.webhook_log)
    finally:
        server.shutdown()
        server.server_close()
    assert log
    assert len(received) == len(log)


def test_token_patterns_are_replaced_each_read_and_a_bad_regex_matches_nothing(
    engine: Engine,
) -> None:
    from archiver.api.listings import PublishToken, TokenStream
    from archiver.cycle.tokens import save_tokens

    def token(token_id: int, label: str, *streams: tuple[str, bool]) -> PublishToken:
        return PublishToken(
            id=token_id,
            label=label,
            streams=[TokenStream(streamName=n, isRegex=r) for n, r in streams],
        )

    first = [
        token(1, "stage", ("cooked", False), ("container1/.+", True), ("live-[0-9]+", True)),
        token(2, "broken", ("live-([", True)),
    ]
    with engine.begin() as conn:
        added = save_tokens(conn=conn, tokens=first, now=NOW)
        patterns = load_patterns(conn)
    assert added.added == ["cooked"]
    assert [p.describe() for p in matching("live-42", patterns)] == ["stage (live-[0-9]+)"]
    assert matching("xlive-42", patterns) == []  # the whole name must match
    assert [p.pattern for p in patterns if p.compiled() is None] == ["live-(["]
    with engine.begin() as conn:
        save_tokens(conn=conn, tokens=[token(3, "other", (".*", True))], now=NOW)
        assert [p.describe() for p in load_patterns(conn)] == ["other (.*)"]
