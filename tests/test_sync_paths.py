"""The sync engine's bookkeeping, one path at a time, against a fake vendor in process.

The vendor behind `httpx.MockTransport` answers every series request well formed (every
bucket, zero traffic except where a test puts some), so each test provokes exactly one
thing: a refused request, a broken stream, a database refusal, a shutdown, a clock skew. On
real SQLite and real PostgreSQL; no sockets, each test a fraction of a second.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient
from archiver.api.errors import AuthenticationError
from archiver.config import Settings, get_settings
from archiver.cycle.report import CycleReport
from archiver.cycle.streams import add_streams
from archiver.cycle.sync import plan_cycle, run_cycle
from archiver.errors import DatabaseError
from archiver.rules.plan import Plan, StreamEntry
from archiver.store import state
from archiver.store.tables import stream_usage, sync_runs, sync_state, tracked_streams
from archiver.timeutil import Resolution, buckets, floor, format_iso, parse_instant
from archiver.vocabulary import PUBLISH_TOKENS_PATH, StreamSource, StreamStatus

NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
# One day of hourly (and per-stream) retention: the oldest hour the vendor holds at NOW is
# 2026-11-19 12:02, rounded up to 13:00 (its exact line: the 60-minute margin only doubts a
# zero read in 13:00, which this zero-filled vendor answers, so each new hourly scope records
# that hour as a gap). A new hourly scope starts there, and hours up to the current one
# (12:00 today) are asked for.
HOUR_HORIZON = datetime(2026, 11, 19, 13, tzinfo=UTC)
TODAY = datetime(2026, 11, 20, tzinfo=UTC)
H = Resolution.HOUR
INTERRUPTED = "interrupted: shutting down"

Series = dict[str, Any]
Bend = Callable[[str, Resolution, Series], None]


class Vendor:
    """A fake vendor: well-formed answers, zero traffic except `traffic`; records each path.

    `traffic[(stream, resolution, bucket)]` is that bucket's bytes out (stream '' is the
    account). `date` is the `Date` header (None: none is sent), by default the host's frozen
    clock `NOW`, as an honest vendor's would be. `refuse(path, resolution)`
    may answer an error instead; `bend(path, resolution, data)` may change a good answer.
    """

    def __init__(self, *, date: datetime | None = NOW) -> None:
        self.date = date
        self.traffic: dict[tuple[str, Resolution, datetime], int] = {}
        self.tokens: list[dict[str, Any]] = []
        self.refuse: Callable[[str, Resolution], httpx.Response | None] = lambda p, r: None
        self.bend: Bend | None = None
        self.asked: list[tuple[str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        params = request.url.params
        self.asked.append((path, params.get("resolution")))
        headers = {} if self.date is None else {"Date": email.utils.format_datetime(self.date)}
        if path == PUBLISH_TOKENS_PATH:
            data: Any = self.tokens if params["page"] == "1" else []
            return httpx.Response(200, json={"status": "success", "data": data}, headers=headers)
        resolution = Resolution.parse(params["resolution"])
        refused = self.refuse(path, resolution)
        if refused is not None:
            return refused
        start = floor(parse_instant(params["startDate"]), resolution)
        keys = list(buckets(start, parse_instant(params["stopDate"]), resolution))
        names = params.get_list("streamNames")

        def bandwidth(stream: str) -> dict[str, dict[str, int]]:
            return {
                format_iso(t): {
                    "bytesIn": 0,
                    "bytesOut": self.traffic.get((stream, resolution, t), 0),
                }
                for t in keys
            }

        if path.endswith("/account/series"):
            data = {"bandwidth": bandwidth("")}
        elif path.endswith("/account/geo_series"):
            data = {"geo": {format_iso(t): {} for t in keys}}
        elif path.endswith("/tracking/streams/series"):
            data = {name: {format_iso(t): [] for t in keys} for name in names}
        elif path.endswith("/streams/series"):
            data = {name: {"bandwidth": bandwidth(name)} for name in names}
        else:
            data = {"geo": {name: {format_iso(t): {} for t in keys} for name in names}}
        if self.bend is not None:
            self.bend(path, resolution, data)
        return httpx.Response(200, json={"status": "success", "data": data}, headers=headers)

    def paths(self, resolution: str | None = None) -> list[str]:
        return [p for p, r in self.asked if resolution is None or r == resolution]


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_base_url": "https://vendor.invalid",
        "api_token": "a-test-secret-for-the-fake-vendor",
        "now": NOW,
        "discovery": False,
        "publish_tokens": False,
        # This fake vendor serves no GraphQL: the feeds and viewer stats are tested in
        # tests/test_feeds_*.py and tests/test_viewers_cycle.py.
        "feeds": False,
        "viewers": False,
        "streams": [],
        "hour_retention_days": 1,
        "stream_retention_days": 1,
        "day_retention_days": 2,
        "month_history_months": 1,
        "concurrency": 1,
        "max_attempts": 1,
        "max_requests_per_second": 10_000.0,
    }
    values.update(overrides)
    return get_settings(**values)


def client_for(vendor: Vendor, config: Settings) -> AnalyticsClient:
    return AnalyticsClient.from_options(
        config.client_options(), transport=httpx.MockTransport(vendor), sleep=lambda _: None
    )


def cycle(
    engine: Engine, vendor: Vendor, config: Settings | None = None, **options: Any
) -> CycleReport:
    config = config or settings()
    with client_for(vendor, config) as client:
        return run_cycle(engine=engine, client=client, settings=config, **options)


def last_run(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(sync_runs).order_by(sync_runs.c.id.desc()).limit(1)).one()
    return dict(row._mapping)


def scopes(engine: Engine) -> dict[tuple[str, str, str], dict[str, Any]]:
    with engine.connect() as conn:
        return {
            (r.dataset, r.stream_name, r.resolution): dict(r._mapping)
            for r in conn.execute(sa.select(sync_state))
        }


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "archiver.cycle.sync" and r.levelno == logging.ERROR
    ]


# --- the run row --------------------------------------------------------------------------


def test_a_clean_cycle_closes_its_run_ok_with_its_clock_believed(engine: Engine) -> None:
    vendor = Vendor()  # the vendor's clock agrees with ours
    vendor.traffic[("", H, TODAY + timedelta(hours=3))] = 10
    began = time.monotonic()
    report = cycle(engine, vendor)
    elapsed = time.monotonic() - began
    assert report.ok, report.errors
    assert report.skew == timedelta(0)
    assert 0 <= report.duration <= elapsed
    run = last_run(engine)
    assert run["status"] == "ok"
    assert run["error"] is None
    assert run["clock_skew_seconds"] == 0
    assert run["clock_problem"] is None
    assert run["finished_at"] == NOW
    assert run["requests"] == report.requests == report.planned > 0
    assert run["failed_requests"] == 0
    assert run["rows_written"] == report.rows == 1


@pytest.mark.parametrize("skew", [timedelta(0), timedelta(hours=2), -timedelta(minutes=30)])
def test_the_vendors_clock_skew_is_recorded_in_seconds(engine: Engine, skew: timedelta) -> None:
    report = cycle(engine, Vendor(date=NOW + skew))
    assert report.skew == skew
    run = last_run(engine)
    assert run["clock_skew_seconds"] == skew.total_seconds()
    # A fresh archive's reference is the host clock: only a skew of none is believed at once
    # (tests/test_clock_trust.py covers the rest).
    believed = skew == timedelta(0)
    assert report.ok is believed, report.errors
    assert run["status"] == ("ok" if believed else "partial")
    assert (run["clock_problem"] is None) is believed


def test_a_run_ended_by_a_fatal_error_records_that_error(engine: Engine) -> None:
    vendor = Vendor()

    def refuse(path: str, resolution: Resolution) -> httpx.Response | None:
        if path.endswith("/account/series") and resolution is Resolution.DAY:
            return httpx.Response(401, json={"status": "fail", "data": {"message": "no"}})
        return None

    vendor.refuse = refuse
    with pytest.raises(AuthenticationError) as info:
        cycle(engine, vendor)
    run = last_run(engine)
    assert run["status"] == "failed"
    assert run["error"] == str(info.value)


def test_the_end_of_a_run_that_cannot_be_recorded_is_logged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(**_: Any) -> None:
        raise DatabaseError("database error: disk I/O error")

    monkeypatch.setattr(state, "finish_run", refused)
    report = cycle(engine, Vendor())
    assert report.ok, report.errors  # the cycle's work stands; only its record is missing
    run = last_run(engine)
    assert run["status"] == "running"
    (record,) = [
        r for r in caplog.records if r.name == "archiver.cycle.sync" and r.levelno >= logging.ERROR
    ]
    # A database failure is one line with its reason (the server going away mid-cycle is
    # an outage the service rides out, not a bug): no traceback.
    message = f"could not record the end of run {run['id']}: database error: disk I/O error"
    assert record.getMessage() == message
    assert record.exc_info is None
    assert not record.exc_text


# --- failures -----------------------------------------------------------------------------


def test_a_failed_request_is_reported_logged_and_noted_on_its_scope(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    vendor = Vendor()

    def refuse(path: str, resolution: Resolution) -> httpx.Response | None:
        if path.endswith("/account/series") and resolution is H:
            return httpx.Response(400, json={"status": "fail", "data": {"message": "bad hour"}})
        return None

    vendor.refuse = refuse
    caplog.set_level(logging.INFO)
    report = cycle(engine, vendor)
    assert report.failed == 1
    (error,) = report.errors
    assert error.startswith("account/series Hour 2026-11-19T13:00:00Z..2026-11-20T13:00:00Z: ")
    assert "bad hour" in error
    assert errors_logged(caplog) == [f"request failed (will retry next cycle): {error}"]
    rows = scopes(engine)
    failed = rows[("account_usage", "", "Hour")]
    assert failed["last_error"] == error
    assert failed["last_error_at"] == NOW
    assert failed["watermark"] == HOUR_HORIZON  # asked again next cycle
    assert failed["last_success_at"] is None
    others = [v for k, v in rows.items() if k != ("account_usage", "", "Hour")]
    assert others
    assert all(v["last_error"] is None and v["last_success_at"] == NOW for v in others)
    run = last_run(engine)
    assert (run["status"], run["error"], run["failed_requests"]) == ("partial", error, 1)


def test_a_response_the_database_refuses_fails_only_that_response(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Past the parser (as if it let a value through), the database refuses a row of the
    # hourly account answer: that response fails, the others are stored.
    from archiver.api import series

    parse = series._usage_rows

    def poisoned(data: Any, window: Any, endpoint: str) -> list[dict[str, Any]]:
        rows = parse(data, window, endpoint)
        if endpoint.startswith("account/series Hour"):
            rows[0]["bytes_in"] = 2**64
        return rows

    monkeypatch.setattr(series, "_usage_rows", poisoned)
    vendor = Vendor()
    vendor.traffic[("", H, TODAY + timedelta(hours=3))] = 10
    vendor.traffic[("", Resolution.DAY, TODAY)] = 10
    report = cycle(engine, vendor)
    assert report.failed == 1
    (error,) = report.errors
    assert error.startswith("account/series Hour 2026-11-19T13:00:00Z..2026-11-20T13:00:00Z: ")
    assert "database error" in error
    assert errors_logged(caplog) == [f"request failed (will retry next cycle): {error}"]
    failed = scopes(engine)[("account_usage", "", "Hour")]
    assert (failed["watermark"], failed["last_error"]) == (HOUR_HORIZON, error)
    assert failed["last_error_at"] == NOW
    assert report.rows == 1  # the daily row; the hourly one was rolled back
    assert last_run(engine)["error"] == error


def test_a_broken_stream_in_a_good_answer_is_reported_and_not_stored(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    vendor = Vendor()
    for name in ("bad", "good"):
        vendor.traffic[(name, H, TODAY + timedelta(hours=2))] = 5

    def bend(path: str, resolution: Resolution, data: Series) -> None:
        if path.endswith("/analytics/streams/series") and resolution is H:
            data["bad"]["bandwidth"][format_iso(TODAY + timedelta(hours=4))]["bytesOut"] = -5

    vendor.bend = bend
    report = cycle(engine, vendor, settings(streams=["bad", "good"]))
    assert report.failed == 1
    (error,) = report.errors
    assert error.startswith("streams/series Hour ")
    assert "at data.bad.bandwidth" in error  # the broken part, and only that
    assert errors_logged(caplog) == [f"broken answer (will retry next cycle): {error}"]
    rows = scopes(engine)
    bad, good = rows[("stream_usage", "bad", "Hour")], rows[("stream_usage", "good", "Hour")]
    assert (bad["watermark"], bad["last_error"], bad["last_error_at"]) == (
        HOUR_HORIZON,
        error,
        NOW,
    )
    assert good["watermark"] > HOUR_HORIZON
    assert (good["last_error"], good["last_success_at"]) == (None, NOW)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(stream_usage.c.stream_name, stream_usage.c.period_start).where(
                stream_usage.c.resolution == "Hour"
            )
        ).all()
    assert [tuple(r) for r in stored] == [("good", TODAY + timedelta(hours=2))]
    run = last_run(engine)
    assert (run["status"], run["error"], run["failed_requests"]) == ("partial", error, 1)


# --- what a good answer leaves --------------------------------------------------------------


def test_traffic_marks_a_stream_seen_at_its_latest_bucket(engine: Engine) -> None:
    vendor = Vendor()
    for hour in (9, 11, 7):
        vendor.traffic[("cam", H, TODAY + timedelta(hours=hour))] = 1
    vendor.traffic[("cam", Resolution.DAY, TODAY)] = 3
    report = cycle(engine, vendor, settings(streams=["cam", "quiet"]))
    assert report.ok, report.errors
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(tracked_streams.c.stream_name, tracked_streams.c.last_seen_at)
        ).all()
    seen = {row.stream_name: row.last_seen_at for row in rows}
    assert seen == {"cam": TODAY + timedelta(hours=11), "quiet": None}


def test_rows_by_table_sums_every_response_of_a_table(engine: Engine) -> None:
    vendor = Vendor()
    # 12 buckets a request: the 23 hours from the horizon are asked in two requests.
    for moment in (HOUR_HORIZON + timedelta(hours=1), TODAY + timedelta(hours=3), TODAY):
        vendor.traffic[("", H, moment)] = 2
    report = cycle(engine, vendor, settings(max_buckets_per_request=12))
    assert report.ok, report.errors
    assert vendor.paths("Hour").count("/api/analytics/account/series") == 2
    assert report.rows_by_table == {"account_usage": 3, "account_geo_usage": 0}
    assert report.rows == 3


# --- planning and sources -------------------------------------------------------------------


def test_plan_cycle_plans_the_extra_streams_too_and_writes_nothing(engine: Engine) -> None:
    config = settings()
    with engine.begin() as conn:
        add_streams(conn=conn, names=["cam"], source=StreamSource.CONFIG, now=NOW)

    def names(plan: Plan) -> set[str]:
        return {n for p in plan.requests for n in p.request.streams}

    assert names(plan_cycle(engine=engine, settings=config, now=NOW)) == {"cam"}
    extra = [StreamEntry("new", StreamStatus.ACTIVE)]
    plan = plan_cycle(engine=engine, settings=config, now=NOW, extra_streams=extra)
    assert names(plan) == {"cam", "new"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sync_state)).scalar() == 0
        tracked = conn.execute(sa.select(tracked_streams.c.stream_name)).scalars().all()
    assert tracked == ["cam"]


@pytest.mark.parametrize(
    ("discover", "enabled"), [(True, True), (True, False), (False, True), (False, False)]
)
def test_publish_tokens_are_read_only_when_discovering_with_them_enabled(
    engine: Engine, discover: bool, enabled: bool
) -> None:
    vendor = Vendor()
    vendor.tokens = [
        {"id": 7, "label": "studio", "streams": [{"streamName": "from-token", "isRegex": False}]}
    ]
    report = cycle(engine, vendor, settings(publish_tokens=enabled), discover=discover)
    assert report.ok, report.errors
    read = discover and enabled
    assert (PUBLISH_TOKENS_PATH in vendor.paths()) == read
    assert report.discovered == (["from-token"] if read else [])
    with engine.connect() as conn:
        tracked = conn.execute(sa.select(tracked_streams.c.stream_name)).scalars().all()
    assert tracked == (["from-token"] if read else [])


def test_lost_buckets_are_logged_per_scope(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    old = datetime(2026, 11, 18, tzinfo=UTC)
    with engine.begin() as conn:
        for stream in ("", "cam"):
            dataset = "stream_usage" if stream else "account_usage"
            conn.execute(
                sa.insert(sync_state).values(
                    dataset=dataset, stream_name=stream, resolution="Hour", watermark=old
                )
            )
    report = cycle(engine, Vendor(), settings(streams=["cam"]))
    assert report.ok, report.errors
    # Purged before the vendor's line: two gaps. The zeros each hourly scope reads in its
    # first hour, which the vendor surely still held when it answered, are quiet hours.
    assert len(report.gaps) == 2
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "archiver.cycle.sync"
        and r.levelno == logging.WARNING
        and r.getMessage().startswith("lost data:")
    ]
    doubted = [r for r in caplog.records if r.getMessage().startswith("lost data? ")]
    assert doubted == []
    tail = (
        "Hour buckets 2026-11-18T00:00:00+00:00..2026-11-19T13:00:00+00:00 were purged by "
        "the vendor before they were archived final"
    )
    assert sorted(warned) == [
        f"lost data: account_usage (account) {tail}",
        f"lost data: stream_usage cam {tail}",
    ]


# --- hooks and shutdown ---------------------------------------------------------------------


def test_the_plan_and_each_stored_answer_reach_the_hooks(engine: Engine) -> None:
    plans: list[Plan] = []
    counts: list[int] = []
    report = cycle(
        engine,
        Vendor(),
        settings(streams=["cam"]),
        on_plan=plans.append,
        progress=lambda r: counts.append(r.requests),
    )
    assert report.ok, report.errors
    (plan,) = plans
    assert len(plan.requests) == report.planned > 1
    assert counts == list(range(1, report.planned + 1))


def test_a_stop_before_the_first_answer_is_reported_once(engine: Engine) -> None:
    stop = threading.Event()
    report = cycle(engine, Vendor(), stop=stop, on_plan=lambda _: stop.set())
    assert report.planned > 0
    assert report.requests == 0
    assert report.errors == [INTERRUPTED]
    run = last_run(engine)
    assert (run["status"], run["error"]) == ("partial", INTERRUPTED)


def test_a_shutdown_that_cancels_the_fetching_is_reported(engine: Engine) -> None:
    # As the service's signal handler does: set the stop event, then cancel the client, here
    # before any request went out; no answer comes back at all.
    stop = threading.Event()
    vendor = Vendor()
    config = settings()
    with client_for(vendor, config) as client:

        def shutdown(_: Plan) -> None:
            stop.set()
            client.cancel()

        report = run_cycle(
            engine=engine, client=client, settings=config, stop=stop, on_plan=shutdown
        )
    assert report.planned > 0
    assert report.requests == 0
    assert report.errors == [INTERRUPTED]
    assert last_run(engine)["error"] == INTERRUPTED


def test_a_stop_after_the_last_answer_interrupts_nothing(engine: Engine) -> None:
    stop = threading.Event()

    def progress(report: CycleReport) -> None:
        if report.requests == report.planned:
            stop.set()

    report = cycle(engine, Vendor(), stop=stop, progress=progress)
    assert stop.is_set()
    assert report.ok, report.errors
    assert last_run(engine)["status"] == "ok"
