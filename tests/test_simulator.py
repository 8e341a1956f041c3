"""The simulator behaves like the vendor: schemas, errors, sums, refresh, purges, faults."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from archiver.simulator import SimConfig, Traffic
from archiver.simulator.buckets import Resolution as SimResolution
from archiver.simulator.draws import draw_hash
from archiver.simulator.server import Faults
from archiver.simulator.traffic import hour_index
from archiver.timeutil import Resolution
from tests.conftest import VENDOR
from tests.harness import truth
from tests.simhelpers import get_data, running_simulator

NOW = datetime(2026, 11, 20, 12, 20, tzinfo=UTC)
CONFIG = SimConfig(streams=24, seed=7, unreportable_streams=1)
A = "/api/analytics/"


def spec() -> dict[str, Any]:
    path = VENDOR / "analytics-openapi.json"
    assert path.is_file(), f"vendor OpenAPI document missing: {path}"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def validator_for(document: dict[str, Any], path: str) -> Draft202012Validator:
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    return Draft202012Validator({**schema, "components": document["components"]})


def names(sim_config: SimConfig, count: int) -> list[str]:
    return [s.name for s in Traffic(sim_config).streams[:count]]


@pytest.mark.parametrize(
    ("path", "resolutions", "streams"),
    [
        ("account/series", ["Hour", "Day", "Month"], False),
        ("account/geo_series", ["Hour", "Day"], False),
        ("streams/series", ["Hour", "Day"], True),
        ("streams/geo_series", ["Hour", "Day"], True),
    ],
)
def test_every_response_validates_against_the_vendor_schema(
    path: str, resolutions: list[str], streams: bool
) -> None:
    document = spec()
    validator = validator_for(document, f"/api/analytics/{path}")
    with running_simulator(CONFIG, start=NOW) as (_, http):
        for resolution in resolutions:
            params = [
                ("startDate", "2026-10-01"),
                ("stopDate", "2026-11-21"),
                ("resolution", resolution),
            ]
            if resolution == "Hour":
                params[0] = ("startDate", "2026-11-12T00:00:00Z")
            if streams:
                params += [("streamNames", n) for n in names(CONFIG, 10)]
            response = http.get(A + path, params=tuple(params))
            assert response.status_code == 200
            body = response.json()
            errors = list(validator.iter_errors(body))
            assert errors == [], errors[0].message if errors else ""
            assert body.get("data")


def test_monitoring_and_errors_validate_against_the_vendor_schema() -> None:
    document = spec()
    listing = validator_for(document, "/api/monitoring/streams")
    fail = Draft202012Validator(
        {"$ref": "#/components/schemas/FailResponse", "components": document["components"]}
    )
    with running_simulator(CONFIG, start=NOW) as (_, http):
        body = http.get("/api/monitoring/streams", params={"page": 1, "itemsOnPage": 5}).json()
        assert list(listing.iter_errors(body)) == []
        bad = http.get(A + "account/series", params={"resolution": "Hour"}).json()
        assert list(fail.iter_errors(bad)) == []


def test_vendor_errors() -> None:
    with running_simulator(CONFIG, start=NOW) as (_, http):
        base = [("startDate", "2026-11-19"), ("stopDate", "2026-11-20"), ("resolution", "Day")]
        eleven = [("streamNames", f"s{i}") for i in range(11)]
        too_many = http.get(A + "streams/series", params=tuple(base + eleven))
        assert too_many.status_code == 400
        assert too_many.json()["data"]["errors"]["streamNames"]
        missing = http.get(A + "account/series", params=tuple(base[1:]))
        assert missing.status_code == 400
        assert "startDate" in missing.json()["data"]["errors"]
        month = http.get(
            A + "streams/series", params=[*base[:2], ("resolution", "Month"), ("streamNames", "a")]
        )
        assert month.status_code == 400
        long_name = http.get(A + "streams/series", params=[*base, ("streamNames", "x" * 129)])
        assert long_name.status_code == 400
        bad_token = http.get(
            A + "account/series", params=tuple(base), headers={"Authorization": "Bearer wrong"}
        )
        assert bad_token.status_code == 401
        assert bad_token.json() == {"status": "fail", "data": {"message": "Unauthorized"}}
        refused = get_data(
            http,
            A + "streams/series",
            [*base, ("streamNames", "a--b"), ("streamNames", "x/y"), ("streamNames", "ok")],
        )
        assert list(refused) == ["ok"]
        lower = get_data(http, A + "account/series", [*base[:2], ("resolution", "day")])
        assert list(lower["bandwidth"]) == ["2026-11-19T00:00:00Z"]


def _bandwidth_sum(series: dict[str, Any], block: str = "bandwidth") -> tuple[int, int]:
    values = series[block].values()
    return sum(v["bytesIn"] for v in values), sum(v["bytesOut"] for v in values)


def test_hours_sum_to_days_and_days_to_months_and_streams_to_the_account() -> None:
    config = SimConfig(streams=12, seed=11)
    month_end = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    with running_simulator(config, start=month_end) as (_, http):
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
        assert _bandwidth_sum(hours) == _bandwidth_sum(days)
        assert _bandwidth_sum(hours) != (0, 0)
        for block in ("restream", "geoCascade", "standardStream"):
            assert _bandwidth_sum(hours, block) == _bandwidth_sum(days, block)
        november = [("startDate", "2026-11-01"), ("stopDate", "2026-12-01")]
        all_days = get_data(http, A + "account/series", [*november, ("resolution", "Day")])
        month = get_data(http, A + "account/series", [*november, ("resolution", "Month")])
        assert _bandwidth_sum(all_days) == _bandwidth_sum(month)
        per_stream = get_data(
            http,
            A + "streams/series",
            [*day, ("resolution", "Day")] + [("streamNames", n) for n in names(config, 10)],
        )
        rest = get_data(
            http,
            A + "streams/series",
            [*day, ("resolution", "Day")] + [("streamNames", n) for n in names(config, 12)[10:]],
        )
        total_in = sum(_bandwidth_sum(s)[0] for s in [*per_stream.values(), *rest.values()])
        assert total_in == _bandwidth_sum(days)[0]
        geo = get_data(http, A + "account/geo_series", [*day, ("resolution", "Day")])
        (bucket,) = geo["geo"].values()
        assert sum(c["bytesOut"] for c in bucket.values()) == _bandwidth_sum(days)[1]


def test_refresh_visibility_grows_by_quarters_then_is_final() -> None:
    config = SimConfig(streams=30, seed=5)
    with running_simulator(config, start=NOW) as (sim, http):
        # Find an hour of the account with traffic, then watch it through its refreshes.
        hour = datetime(2026, 11, 19, 18, tzinfo=UTC)
        params = [
            ("startDate", "2026-11-19T18:00:00Z"),
            ("stopDate", "2026-11-19T19:00:00Z"),
            ("resolution", "Hour"),
        ]
        seen = []
        for minutes in (0, 14, 15, 29, 30, 45, 60, 75):
            sim.set_now(hour + timedelta(minutes=minutes))
            data = get_data(http, A + "account/series", params)
            seen.append(data["bandwidth"]["2026-11-19T18:00:00Z"]["bytesOut"])
        final = seen[-1]
        assert final > 0
        assert seen[:2] == [0, 0]
        assert seen[2] == seen[3] > 0
        assert seen[2] < seen[4] < seen[5] < seen[6] == final
        rows = truth(http, "account_usage", Resolution.HOUR, hour, hour + timedelta(hours=1))
        assert [r["bytes_out"] for r in rows] == [final]


def test_purges_read_back_as_zeros_and_empty_buckets() -> None:
    config = SimConfig(streams=30, seed=5)
    hour = datetime(2026, 11, 10, 18, tzinfo=UTC)
    traffic = Traffic(config)
    first = int((hour - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) // 3600 - 18
    stream = next(
        s.name
        for s in traffic.streams
        if any(traffic.stream_hour(s.index, h) for h in range(first, first + 24))
    )
    hour_params = [
        ("startDate", "2026-11-10T00:00:00Z"),
        ("stopDate", "2026-11-11T00:00:00Z"),
        ("resolution", "Hour"),
    ]
    with running_simulator(config, start=hour + timedelta(days=2)) as (sim, http):
        before = get_data(http, A + "account/series", hour_params)
        before_geo = get_data(
            http, A + "streams/geo_series", [*hour_params, ("streamNames", stream)]
        )
        assert sum(v["bytesOut"] for v in before["bandwidth"].values()) > 0
        sim.set_now(datetime(2026, 11, 18, 12, tzinfo=UTC))  # Nov 11 12:00 is the purge line
        after = get_data(http, A + "account/series", hour_params)
        assert all(v == {"bytesOut": 0, "bytesIn": 0} for v in after["bandwidth"].values())
        after_geo = get_data(
            http, A + "streams/geo_series", [*hour_params, ("streamNames", stream)]
        )
        assert any(before_geo["geo"][stream].values())
        assert all(v == {} for v in after_geo["geo"][stream].values())
        daily = get_data(
            http,
            A + "account/series",
            [("startDate", "2026-11-10"), ("stopDate", "2026-11-11"), ("resolution", "Day")],
        )
        assert daily["bandwidth"]["2026-11-10T00:00:00Z"]["bytesOut"] > 0  # 90-day window


def test_discovery_lists_streams_live_within_the_last_hour_and_pages() -> None:
    config = SimConfig(streams=200, seed=2)
    with running_simulator(config, start=NOW) as (sim, http):
        first = http.get("/api/monitoring/streams", params={"page": 1, "itemsOnPage": 3}).json()
        total = first["data"]["pagination"]["totalItems"]
        assert total > 3
        collected = []
        for page in range(1, first["data"]["pagination"]["totalPages"] + 2):
            body = http.get(
                "/api/monitoring/streams", params={"page": page, "itemsOnPage": 3}
            ).json()
            collected += [s["streamName"] for s in body["data"]["data"]]
        assert len(collected) == len(set(collected)) == total
        hour = (NOW - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() // 3600
        for name in collected:
            stream = sim.traffic.by_name[name]
            assert sim.traffic.live_session(stream.index, int(hour)) or sim.traffic.live_session(
                stream.index, int(hour) - 1
            )


def test_growth_brings_new_streams_over_time() -> None:
    config = SimConfig(streams=20, initial_streams=5, growth_days=4, seed=3)
    with running_simulator(config, start=config.origin) as (sim, http):
        seen: set[str] = set()
        moment = config.origin
        while moment < config.origin + timedelta(days=6):
            sim.set_now(moment)
            body = http.get(
                "/api/monitoring/streams", params={"page": 1, "itemsOnPage": 1000}
            ).json()
            seen |= {s["streamName"] for s in body["data"]["data"]}
            moment += timedelta(hours=1)
    late = {s.name for s in sim.traffic.streams[5:]}
    assert len(seen & late) >= 10


def test_faults_are_seeded_and_counted() -> None:
    faults = Faults(error_rate=0.3, throttle_rate=0.2, truncate_rate=0.2, seed=9)
    with running_simulator(CONFIG, start=NOW, faults=faults) as (_, http):
        statuses = []
        truncated = 0
        for _ in range(60):
            response = http.get(
                A + "account/series",
                params={"startDate": "2026-11-19", "stopDate": "2026-11-20", "resolution": "Day"},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "1"
            if response.status_code == 200:
                try:
                    response.json()
                except json.JSONDecodeError:
                    truncated += 1
        stats = http.get("/_sim/stats").json()
    assert {200, 429, 503} <= set(statuses)
    assert truncated > 0
    assert stats["requests"]["/api/analytics/account/series"]["503"] == statuses.count(503)
    assert stats["api_requests"] == 60


def test_clock_control_over_http() -> None:
    with running_simulator(CONFIG, start=NOW) as (sim, http):
        response = http.post("/_sim/clock", json={"now": "2026-11-22T08:00:00Z"})
        assert response.json() == {"now": "2026-11-22T08:00:00Z"}
        assert sim.now() == datetime(2026, 11, 22, 8, tzinfo=UTC)
        assert http.post("/_sim/clock", json={"now": "soon"}).status_code == 400


def test_truth_leaves_out_unreportable_names_and_partial_buckets() -> None:
    with running_simulator(CONFIG, start=NOW) as (_, http):
        rows = http.get(
            "/_sim/truth",
            params={
                "dataset": "stream_usage",
                "resolution": "Hour",
                "start": "2026-11-20T00:00:00Z",
                "stop": "2026-11-21T00:00:00Z",
            },
        ).json()["rows"]
        assert rows
        assert all("--" not in r["stream_name"] for r in rows)
        assert max(r["period_start"] for r in rows) <= "2026-11-20T11:00:00Z"
        assert http.get("/_sim/truth", params={"dataset": "nope"}).status_code == 400


def test_unknown_paths_are_404() -> None:
    with running_simulator(CONFIG, start=NOW) as (_, http):
        assert http.get("/api/analytics/nothing").status_code == 404
        assert isinstance(http, httpx.Client)


def test_concurrent_account_answers_sum_each_day_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # 64 requests for the same months used to sum the same days side by side: at 10,000
    # streams each answer then took longer than the client waits. A day is summed once.
    traffic = Traffic(SimConfig(streams=30, history_days=10))
    summed: list[int] = []
    uncached = traffic._day_account_uncached

    def counting(day: int) -> Any:
        summed.append(day)
        return uncached(day)

    monkeypatch.setattr(traffic, "_day_account_uncached", counting)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    until = datetime(2026, 11, 3, tzinfo=UTC)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: traffic.bucket(None, SimResolution.MONTH, start, visible_until=until),
                range(16),
            )
        )
    assert len(summed) == len(set(summed))  # no day summed twice
    assert all(a == answers[0] for a in answers)
    assert answers[0].bandwidth()[1] > 0
    # Days before the first stream was born are empty without a look at any stream.
    assert traffic._day_account(hour_index(start) // 24 - 400) == {}


@given(st.lists(st.integers(-(2**70), 2**70), min_size=2, max_size=5))
def test_a_hash_continues_one_taken_of_the_parts_before(parts: list[int]) -> None:
    # The simulator's draws rest on it: a stream's hash is taken once, each period continues it.
    assert draw_hash(*parts) == draw_hash(parts[-1], value=draw_hash(*parts[:-1]))
