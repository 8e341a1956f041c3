"""Grafana: the provisioned dashboard's every panel, macros expanded, on a PostgreSQL archive."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from tests.test_readme_sql import Truth, filled  # noqa: F401  (fixture)

GRAFANA = Path(__file__).resolve().parents[1] / "config" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "archiver.json"
# The dashboard's time range in the test: Nov 26-30, 2026, as Grafana sends it.
FROM, TO = "2026-11-26T00:00:00Z", "2026-11-30T23:59:59Z"
VIEWER_PANELS = (
    "Peak concurrent viewers per hour (account)",
    "Peak concurrent viewers per day (account)",
    "Top 10 streams by peak concurrent viewers",
)


def panels() -> dict[str, dict[str, Any]]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return {p["title"]: p for p in loaded["panels"]}


def expand(sql: str) -> str:
    """Grafana's PostgreSQL macros, as its data source expands them."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 BETWEEN '{FROM}' AND '{TO}'", sql)
    return sql.replace("$__timeFrom()", f"'{FROM}'").replace("$__timeTo()", f"'{TO}'")


def test_provisioning_points_the_dashboard_at_the_data_source() -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "archiver.yaml").read_text()
    )
    (source,) = sources["datasources"]
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "archiver.yaml").read_text()
    )
    assert providers["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    # Every variable the data source reads is one the compose service sets.
    text = (GRAFANA / "provisioning" / "datasources" / "archiver.yaml").read_text()
    compose = yaml.safe_load((GRAFANA.parents[1] / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    assert set(re.findall(r"\$\{(\w+)\}", text)) <= set(grafana["environment"])
    assert "./config/grafana/dashboards:/etc/grafana/dashboards:ro" in grafana["volumes"]
    for panel in panels().values():
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
            assert target["datasource"]["type"] == source["type"]
            assert "$__" not in expand(target["rawSql"])


def run(engine: Engine, title: str) -> list[dict[str, Any]]:
    (target,) = panels()[title]["targets"]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(expand(target["rawSql"])))]


@pytest.mark.postgres
@pytest.mark.e2e
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_panel_on_an_archive_matches_the_truth(
    filled: tuple[Engine, Truth],  # noqa: F811
) -> None:
    engine, truth = filled
    assert set(panels()) == {
        "Egress per day (account)",
        "Top 10 streams by egress",
        "Viewers by country",
        "Coverage: data lost (gaps) and scopes failing",
        "Last successful cycle",
        "Archived up to (watermark per dataset and resolution)",
        *VIEWER_PANELS,
    }
    days = truth("account_usage", "Day", "2026-11-26", "2026-12-01")
    egress = run(engine, "Egress per day (account)")
    assert [
        (r["time"].strftime("%Y-%m-%dT%H:%M:%SZ"), r["egress"], r["ingest"]) for r in egress
    ] == [(d["period_start"], d["bytes_out"], d["bytes_in"]) for d in days]
    totals: dict[str, int] = defaultdict(int)
    for r in truth("stream_usage", "Day", "2026-11-26", "2026-12-01"):
        totals[r["stream_name"]] += r["bytes_out"]
    top = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(r["stream_name"], r["egress"]) for r in run(engine, "Top 10 streams by egress")] == top
    views: dict[str, int] = defaultdict(int)
    for r in truth("account_geo_usage", "Day", "2026-11-26", "2026-12-01"):
        views[r["country"]] += r["views"]
    got = {r["country"]: r["views"] for r in run(engine, "Viewers by country")}
    assert got == dict(views)
    assert run(engine, "Coverage: data lost (gaps) and scopes failing") == []
    (last,) = run(engine, "Last successful cycle")
    assert last["last_ok"] is not None
    marks = run(engine, "Archived up to (watermark per dataset and resolution)")
    assert {r["dataset"] for r in marks} >= {"account_usage", "stream_usage"}
    assert all(isinstance(r[k], int) for r in egress for k in ("egress", "ingest"))


def viewer_peaks(
    rows: list[dict[str, Any]], width: int, key: str = ""
) -> dict[tuple[str, str], int]:
    """The most active viewers at any 5-minute end, per (key, first `width` characters of the
    period): 13 an hour, 10 a day."""
    peaks: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        at = (r.get(key, ""), r["period_start"][:width])
        peaks[at] = max(peaks[at], r["active_viewers"])
    return peaks


def _time(value: Any) -> str:
    # PostgreSQL returns a timestamptz, SQLite the view's text.
    return value if isinstance(value, str) else value.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.e2e
def test_viewer_panels_match_the_simulators_viewers(
    filled: tuple[Engine, Truth],  # noqa: F811
) -> None:
    # Grafana reads PostgreSQL; the panels' SQL is plain enough to hold on SQLite too.
    engine, truth = filled
    account = truth("account_viewer_stats", "", "2026-11-26", "2026-12-01")
    hours = viewer_peaks(account, 13)
    expected = [(f"{h}:00:00Z", peak) for (_, h), peak in sorted(hours.items())]
    got = run(engine, "Peak concurrent viewers per hour (account)")
    assert [(_time(r["time"]), r["peak_viewers"]) for r in got] == expected
    days = viewer_peaks(account, 10)
    assert len(days) == 5
    assert len(set(days.values())) > 1, "too few distinct days to prove a peak"
    got = run(engine, "Peak concurrent viewers per day (account)")
    assert [(_time(r["time"]), r["peak_viewers"]) for r in got] == [
        (f"{d}T00:00:00Z", peak) for (_, d), peak in sorted(days.items())
    ]
    streams = viewer_peaks(
        truth("stream_viewer_stats", "", "2026-11-26", "2026-12-01"), 0, "stream_name"
    )
    top = sorted(((s, p) for (s, _), p in streams.items()), key=lambda sp: (-sp[1], sp[0]))
    got = run(engine, "Top 10 streams by peak concurrent viewers")
    assert [(r["stream_name"], r["peak_viewers"]) for r in got] == top[:10]
