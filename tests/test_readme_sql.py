"""Every SQL example in README.md runs as written on both databases and matches the truth."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.reading.export import _as_text
from archiver.simulator import SimConfig, Simulator
from archiver.vocabulary import RunKind
from tests.simhelpers import TOKEN

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```sql\n(.*?)```", re.DOTALL)
# Streams begin on Nov 26, so a backfill on Dec 2 holds all of their November.
CONFIG = SimConfig(streams=8, seed=3, origin=datetime(2026, 11, 26, tzinfo=UTC), history_days=0)
BACKFILL_AT = datetime(2026, 12, 2, 2, 5, tzinfo=UTC)

Rows = list[dict[str, Any]]
Truth = Callable[..., Rows]


def examples() -> dict[str, str]:
    found = dict(EXAMPLE.findall(README.read_text()))
    assert len(found) >= 6
    return found


@pytest.fixture
def filled(engine: Engine) -> Iterator[tuple[Engine, Truth]]:
    from tests.harness import Harness

    with (
        Simulator(CONFIG, token=TOKEN, start=BACKFILL_AT) as sim,
        httpx.Client(base_url=sim.url) as http,
    ):
        names = [s.name for s in sim.traffic.streams]
        report = Harness(sim, engine, {"streams": names}).cycle(BACKFILL_AT, kind=RunKind.BACKFILL)
        assert report.ok, report.errors

        def truth(dataset: str, resolution: str, start: str, stop: str) -> Rows:
            rows: Rows = http.get(
                "/_sim/truth",
                params={"dataset": dataset, "resolution": resolution, "start": start, "stop": stop},
            ).json()["rows"]
            assert rows, f"the truth has no {dataset} rows: the example would prove nothing"
            return rows

        yield engine, truth


def run_example(engine: Engine, sql: str) -> Rows:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET TIME ZONE 'UTC'"))  # as README tells psql users
        result = conn.execute(sa.text(sql.strip().rstrip(";")))
        return [
            {
                k: _as_text(v)
                if isinstance(v, datetime) or (isinstance(v, str) and v[:2] == "20")
                else v
                for k, v in row._mapping.items()
            }
            for row in result
        ]


def check_top_streams(rows: Rows, truth: Truth) -> None:
    totals: dict[str, int] = defaultdict(int)
    for r in truth("stream_usage", "Day", "2026-11-01", "2026-12-01"):
        totals[r["stream_name"]] += r["bytes_out"]
    expected = sorted(totals.items(), key=lambda kv: -kv[1])[:10]
    assert [(r["stream_name"], int(r["bytes_out"])) for r in rows] == expected


def check_viewers_by_country(rows: Rows, truth: Truth) -> None:
    expected = {
        (r["period_start"], r["country"], r["views"], r["view_seconds"] // 3600)
        for r in truth("account_geo_usage", "Day", "2026-11-27", "2026-11-29")
    }
    got = {(r["day"], r["country"], int(r["views"]), int(r["watch_hours"])) for r in rows}
    assert got == expected


def check_bill_estimate(rows: Rows, truth: Truth) -> None:
    (month,) = truth("account_usage", "Month", "2026-11-01", "2026-12-01")
    (row,) = rows
    assert int(row["bytes_out"]) == month["bytes_out"]
    assert Decimal(str(row["estimated_cost"])) == round(
        Decimal(month["bytes_out"]) / Decimal(10**9) * Decimal("0.05"), 2
    )


def check_stream_hours(rows: Rows, truth: Truth) -> None:
    expected = [
        (r["period_start"], r["bytes_out"])
        for r in truth("stream_usage", "Hour", "2026-11-28", "2026-11-29")
        if r["stream_name"] == "stream-0000"
    ]
    assert expected, "stream-0000 had no traffic that day"
    assert [(r["period_start"], int(r["bytes_out"])) for r in rows] == expected
    assert all(r["is_final"] for r in rows)


def check_account_days(rows: Rows, truth: Truth) -> None:
    expected = [
        (r["period_start"], r["bytes_out"], "Day")
        for r in truth("account_usage", "Day", "2026-11-26", "2026-12-01")
    ]
    assert [(r["day"], int(r["bytes_out"]), r["source"]) for r in rows] == expected
    assert all(r["is_final"] for r in rows)


def check_stream_countries(rows: Rows, truth: Truth) -> None:
    views: dict[tuple[str, str], int] = defaultdict(int)
    for r in truth("stream_geo_usage", "Day", "2026-11-01", "2026-12-01"):
        views[(r["stream_name"], r["country"])] += r["views"]
    assert {(r["stream_name"], r["country"]): int(r["views"]) for r in rows} == dict(views)


def check_unattributed(rows: Rows, truth: Truth) -> None:
    expected = [
        (r["period_start"], r["bytes_out"], r["bytes_out"], 0)
        for r in truth("account_usage", "Day", "2026-11-26", "2026-12-02")
        if r["period_start"] < "2026-12-02"
    ]
    got = [
        (
            r["day"],
            int(r["account_bytes_out"]),
            int(r["streams_bytes_out"]),
            int(r["unattributed_bytes_out"]),
        )
        for r in rows
    ]
    assert got == expected


def check_tracking_ids(rows: Rows, truth: Truth) -> None:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in truth("stream_tracking_usage", "Day", "2026-11-01", "2026-12-01"):
        totals[r["tracking_id"]][0] += r["bytes_out"]
        totals[r["tracking_id"]][1] += r["bytes_in"]
    assert len(totals) > 2, "the simulator's viewers used too few tracking IDs to prove much"
    expected = sorted((key, out, into) for key, (out, into) in totals.items())
    assert [(r["tracking_id"], int(r["bytes_out"]), int(r["bytes_in"])) for r in rows] == expected


def check_long_sessions(rows: Rows, truth: Truth) -> None:
    def seconds(row: dict[str, Any]) -> int:
        started, ended = (_instant(row["started"]), _instant(row["ended"]))
        return int((ended - started).total_seconds())

    sessions = [r for r in truth("stream_sessions", "", "2026-11-25", "2026-12-02") if r["ended"]]
    expected = sorted(
        (r["stream_name"], r["started"], r["ended"], seconds(r))
        for r in sessions
        if seconds(r) > 3600
    )
    got = [(r["stream_name"], r["started"], r["ended"], int(r["duration_seconds"])) for r in rows]
    assert sorted(got) == expected
    assert 0 < len(expected) < len(sessions)  # the filter keeps some sessions and drops some


def check_session_days(rows: Rows, truth: Truth) -> None:
    # Each day's publishing is the set of its seconds some feed of the stream covered (a feed
    # still running, up to the backfill's read); feeds are counted on the day they started.
    seconds: dict[tuple[str, str], set[int]] = defaultdict(set)
    started: dict[tuple[str, str], int] = defaultdict(int)
    sessions = truth("stream_sessions", "", "2026-11-20", "2026-12-02")
    for r in sessions:
        start = int(_instant(r["started"]).timestamp())
        stop = int((_instant(r["ended"]) if r["ended"] else BACKFILL_AT).timestamp())
        started[(r["stream_name"], r["started"][:10])] += 1
        for second in range(start, stop):
            day = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d")
            seconds[(r["stream_name"], day)].add(second)
    expected = {
        (name, f"{day}T00:00:00Z"): (started[(name, day)], len(seconds[(name, day)]) // 60, False)
        for name, day in set(seconds) | set(started)
        if "2026-11-26" <= day < "2026-12-01"
    }
    got = {
        (r["stream_name"], r["day"]): (r["sessions"], r["publishing_minutes"], bool(r["active"]))
        for r in rows
    }
    assert got == expected
    # The proof needs two feeds at once and a session across midnight in it.
    assert max(s for s, _, _ in expected.values()) >= 2
    assert any(r["ended"] and r["started"][:10] < r["ended"][:10] < "2026-12" for r in sessions)


def check_peak_viewers(rows: Rows, truth: Truth) -> None:
    peaks: dict[str, list[int]] = {}
    for r in truth("stream_viewer_stats", "", "2026-11-26", "2026-12-02"):
        if r["stream_name"] == "stream-0000":
            day = peaks.setdefault(r["period_start"][:10] + "T00:00:00Z", [0, 0])
            day[0] = max(day[0], r["active_viewers"])
            day[1] += r["views_started"]
    expected = [(day, peak, started) for day, (peak, started) in sorted(peaks.items())]
    assert len(expected) > 1
    assert [(r["day"], r["peak_viewers"], int(r["views_started"])) for r in rows] == expected
    assert all(r["is_final"] for r in rows)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_completeness(rows: Rows, truth: Truth) -> None:
    truth("account_usage", "Hour", "2026-11-26", "2026-12-02")  # there was data to lose
    assert rows == []


CHECKS: dict[str, Callable[[Rows, Truth], None]] = {
    "top-streams": check_top_streams,
    "viewers-by-country": check_viewers_by_country,
    "bill-estimate": check_bill_estimate,
    "stream-hours": check_stream_hours,
    "account-days": check_account_days,
    "stream-countries": check_stream_countries,
    "completeness": check_completeness,
    "long-sessions": check_long_sessions,
    "peak-viewers": check_peak_viewers,
    "session-days": check_session_days,
    "unattributed": check_unattributed,
    "tracking-ids": check_tracking_ids,
}


def test_every_example_has_a_check() -> None:
    assert set(examples()) == set(CHECKS)


def test_readme_examples_match_the_truth(filled: tuple[Engine, Truth]) -> None:
    engine, truth = filled
    for name, sql in examples().items():
        rows = run_example(engine, sql)
        CHECKS[name](rows, truth)
