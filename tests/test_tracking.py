"""stream_tracking_usage (issue #21 item 1): archived exactly as the simulator held it, over
loopback; a broken answer refused and never stored; its views per tracking ID per day and
month; on both databases."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api import tracking
from archiver.api.decode import Envelope
from archiver.api.errors import ResponseFormatError
from archiver.datasets import STREAMS_TRACKING_SERIES
from archiver.rules.plan import Policy
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.server import Faults
from archiver.store.tables import stream_tracking_usage
from archiver.store.upsert import upsert_rows
from archiver.timeutil import Resolution, format_iso
from archiver.vocabulary import ApiRequest
from tests.harness import Harness, compare_with_truth
from tests.simhelpers import TOKEN
from tests.test_sync_paths import TODAY, H, Series, Vendor, cycle, scopes, settings

START = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
SAMPLE = Path(__file__).parent / "vendor" / "samples" / "spec_tracking_streams_series_simple.json"
TRACKING = "stream_tracking_usage"


# --- the vendor's truth, over loopback ----------------------------------------------------


def test_the_tracking_series_is_archived_exactly_as_the_simulator_held_it(engine: Engine) -> None:
    policy = Policy(margin=timedelta(0))  # exactness against the simulator's shared clock
    with (
        Simulator(SimConfig(streams=9, seed=5), token=TOKEN, start=START) as sim,
        httpx.Client(base_url=sim.url) as http,
    ):
        names = [s.name for s in sim.traffic.streams]
        run = Harness(sim, engine, {"streams": names, "retention_margin_minutes": 0})
        assert run.cycle(START).ok
        last = START + timedelta(hours=2)
        assert run.cycle(last).ok
        verdict = compare_with_truth(
            engine=engine, http=http, first_now=START, last_now=last, policy=policy
        )
    assert verdict.problems == []
    for resolution in ("Hour", "Day"):
        (line,) = [v for v in verdict.lines if v.startswith(f"{TRACKING} {resolution}")]
        found = re.search(r"truth=\s*(\d+) archived=\s*\d+ equal=\s*(\d+)", line)
        assert found is not None, line
        truth, equal = int(found[1]), int(found[2])
        assert truth > 20, line
        assert equal == truth, line
    with engine.connect() as conn:
        ids = set(conn.execute(sa.select(stream_tracking_usage.c.tracking_id)).scalars())
    assert "" in ids  # untracked publishing
    assert len(ids) > 3  # and several viewers' tokens


def test_a_stream_outside_the_requested_names_is_never_stored(engine: Engine) -> None:
    faults = Faults(stranger_stream="stranger")
    with Simulator(SimConfig(streams=3, seed=5), token=TOKEN, start=START, faults=faults) as sim:
        names = [s.name for s in sim.traffic.streams]
        report = Harness(sim, engine, {"streams": names, "discovery": False}).cycle(START)
    assert any("tracking/streams/series" in e and "'stranger'" in e for e in report.errors)
    with engine.connect() as conn:
        stored = set(conn.execute(sa.select(stream_tracking_usage.c.stream_name)).scalars())
    assert stored
    assert "stranger" not in stored
    assert stored <= set(names)


# --- a broken answer costs its stream, and is never stored ----------------------------------

BROKEN: dict[str, Callable[[list[Any]], None]] = {
    "negative bytes": lambda entries: entries[0].update(bytesOut=-5),
    "bytes beyond int64": lambda entries: entries[0].update(bytesIn=2**63),
    "a missing metric": lambda entries: entries[0].pop("bytesIn"),
    "a number for a tracking ID": lambda entries: entries[0].update(trackingId=7),
    "an object for a tracking ID": lambda entries: entries[0].update(trackingId={"id": "t1"}),
    "a control character in a tracking ID": lambda entries: entries[0].update(trackingId="t\x1b"),
    "a tracking ID longer than the column": lambda entries: entries[0].update(trackingId="t" * 129),
    "a tracking ID listed twice": lambda entries: entries.append(dict(entries[0])),
    "a list where the bucket's list belongs": lambda entries: entries.append([1, 2]),
}


@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_a_broken_tracking_answer_is_refused_and_never_stored(
    engine: Engine, breakage: str
) -> None:
    vendor = Vendor()
    spoilt = format_iso(TODAY + timedelta(hours=4))

    def bend(path: str, resolution: Resolution, data: Series) -> None:
        if not path.endswith("/tracking/streams/series") or resolution is not H:
            return
        for name in ("bad", "good"):
            for hour in (2, 4):
                data[name][format_iso(TODAY + timedelta(hours=hour))] = [
                    {"trackingId": "t1", "bytesIn": 1, "bytesOut": 5},
                    {"trackingId": "", "bytesIn": 9, "bytesOut": 0},
                ]
        BROKEN[breakage](data["bad"][spoilt])

    vendor.bend = bend
    before = scopes(engine)
    report = cycle(engine, vendor, settings(streams=["bad", "good"]))
    assert not report.ok
    assert any(
        "tracking/streams/series" in e and ("'bad'" in e or "data.bad." in e) for e in report.errors
    )
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(stream_tracking_usage.c.stream_name, stream_tracking_usage.c.tracking_id)
        ).all()
    assert sorted(stored) == [("good", ""), ("good", ""), ("good", "t1"), ("good", "t1")]
    after = scopes(engine)
    bad, good = ((TRACKING, name, "Hour") for name in ("bad", "good"))
    assert bad not in before
    assert after[bad]["last_error"]
    assert after[bad]["watermark"] < after[good]["watermark"]  # asked again next cycle


def test_the_vendors_documented_example_parses() -> None:
    body = json.loads(SAMPLE.read_text())
    request = ApiRequest(
        STREAMS_TRACKING_SERIES,
        Resolution.DAY,
        datetime(2023, 1, 26, tzinfo=UTC),
        datetime(2023, 2, 8, tzinfo=UTC),
        ("lday0h9i", "teststream2"),
    )
    envelope: Envelope[dict[str, Any]] = tracking.BODY.validate_python(body)
    parsed = tracking.parse_streams_tracking(envelope.data, request.window(), "tracking")
    assert parsed.failed == {}
    assert parsed.strangers == []
    assert {(r["stream_name"], r["tracking_id"], r["bytes_out"]) for r in parsed.rows} == {
        ("lday0h9i", "", 82409106),
        ("lday0h9i", "customTrackingId", 323288624),
        ("lday0h9i", "test-e2e", 453184689),
        ("lday0h9i", "trackingId1", 193646639),
        ("lday0h9i", "trackingId2", 25702807),
    }


def test_a_missing_bucket_is_a_broken_answer_not_no_traffic() -> None:
    window = ApiRequest(
        STREAMS_TRACKING_SERIES, H, TODAY, TODAY + timedelta(hours=2), ("cam",)
    ).window()
    answer: dict[str, Any] = {"cam": {format_iso(TODAY): []}}
    parsed = tracking.parse_streams_tracking(answer, window, "tracking")
    assert parsed.rows == []
    assert "cam" in parsed.failed
    with pytest.raises(ResponseFormatError):
        tracking._tracking_id("a\nb", "here")


# --- the views -------------------------------------------------------------------------------

NOW = datetime(2026, 12, 2, tzinfo=UTC)
DAY = datetime(2026, 11, 18, tzinfo=UTC)


def row(
    stream: str, resolution: str, start: datetime, tracking_id: str, out: int, **extra: Any
) -> dict[str, Any]:
    values = {
        "stream_name": stream,
        "resolution": resolution,
        "period_start": start,
        "tracking_id": tracking_id,
        "bytes_in": 0,
        "bytes_out": out,
        "fetched_at": NOW,
        "is_final": True,
    }
    return {**values, **extra}


def view(engine: Engine, name: str, period: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(sa.text(f"SELECT * FROM {name}")).mappings().all()
    text = {
        (r["tracking_id"], r[period] if isinstance(r[period], str) else format_iso(r[period])): r
        for r in found
    }
    counted = "streams" if period == "day" else "days_with_traffic"
    return {
        key: (int(r["bytes_in"]), int(r["bytes_out"]), int(r[counted]), bool(r["is_final"]))
        for key, r in text.items()
    }


def test_the_views_sum_per_tracking_id_per_day_and_month(engine: Engine) -> None:
    hour = timedelta(hours=1)
    rows = [
        # Stream a: the vendor's day row replaces its hours of that day.
        row("a", "Day", DAY, "x", 100),
        row("a", "Hour", DAY, "x", 30),
        row("a", "Hour", DAY + hour, "x", 40),
        # Stream b: hours only that day (one not final yet), a day row the next day.
        row("b", "Hour", DAY + 2 * hour, "x", 7),
        row("b", "Hour", DAY + 3 * hour, "x", 1, is_final=False),
        row("b", "Hour", DAY + 2 * hour, "", 3, bytes_in=50),
        row("b", "Day", DAY + timedelta(days=1), "x", 11),
        # Another month.
        row("a", "Hour", datetime(2026, 12, 1, 5, tzinfo=UTC), "y", 5),
    ]
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=stream_tracking_usage, rows=rows)
    day, next_day, december = (
        format_iso(DAY),
        format_iso(DAY + timedelta(days=1)),
        "2026-12-01T00:00:00Z",
    )
    assert view(engine, "tracking_daily_usage", "day") == {
        ("x", day): (0, 108, 2, False),
        ("", day): (50, 3, 1, True),
        ("x", next_day): (0, 11, 1, True),
        ("y", december): (0, 5, 1, True),
    }
    assert view(engine, "tracking_monthly_usage", "month") == {
        ("x", "2026-11-01T00:00:00Z"): (0, 119, 2, False),
        ("", "2026-11-01T00:00:00Z"): (50, 3, 1, True),
        ("y", december): (0, 5, 1, True),
    }
