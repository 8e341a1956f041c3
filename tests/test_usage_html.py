"""`report --format html` in a real headless browser: no console errors, figures as archived."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from archiver.datasets import ACCOUNT_VIEWER_STATS, STREAM_VIEWER_STATS
from archiver.reading.html import html_report
from archiver.store import db
from archiver.store.query_rows import save_rows
from archiver.store.tables import account_geo_usage, stream_usage
from archiver.store.upsert import upsert_rows
from archiver.store.viewer_stats import (
    ACCOUNT_KEY,
    move_viewer_watermarks,
)
from tests.test_audience_report import M as MINUTE
from tests.test_audience_report import stat
from tests.test_query_times import geo, usage
from tests.test_usage_report import D25, POLICY, READ_AT, H, archive  # noqa: F401  (fixture)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return found


class Figures(HTMLParser):
    """Every element carrying data-value or data-state, by chart."""

    def __init__(self) -> None:
        super().__init__()
        self.chart = ""
        self.marks: dict[str, list[dict[str, str]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "svg" and "chart" in found.get("class", ""):
            self.chart = found.get("data-metric") or found.get("data-kind", "")
            self.marks[self.chart] = []
        elif tag == "rect" and ("data-value" in found or "data-state" in found):
            self.marks[self.chart].append(found)


def render_in_browser(path: Path) -> tuple[str, list[str]]:
    """(the DOM chromium built, its console lines)."""
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


@pytest.mark.e2e
def test_page_renders_without_errors_and_shows_the_archive(
    archive: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    engine = archive
    with engine.begin() as conn:
        upsert_rows(
            conn=conn,
            table=account_geo_usage,
            rows=[geo(D25 + 10 * H, "Hour", "US", 40), geo(D25 + 11 * H, "Hour", "FR", 7)],
        )
        # A name that must be escaped, not run.
        upsert_rows(
            conn=conn, table=stream_usage, rows=[usage("<script>x</script>", "Day", D25, 99)]
        )
        # Viewers read from 10:00 to 12:00, final: two periods at 10:00, none at 11:00.
        stats = [
            stat(D25 + 10 * H, 12, 12, is_final=True),
            stat(D25 + 10 * H + 5 * MINUTE, 30, 20, is_final=True),
        ]
        save_rows(conn, ACCOUNT_VIEWER_STATS, [{**s, "streams": 1} for s in stats])
        save_rows(conn, STREAM_VIEWER_STATS, [{**s, "stream_name": "<b>cam</b>"} for s in stats])
        move_viewer_watermarks(
            conn, ACCOUNT_VIEWER_STATS.dataset, [ACCOUNT_KEY], D25 + 12 * H, READ_AT
        )
    with engine.connect() as conn:
        page = html_report(
            conn,
            start=D25 + 8 * H,
            stop=D25 + 27 * H,
            by="hour",
            top=10,
            now=READ_AT,
            policy=POLICY,
        )
    path = tmp_path / "usage.html"
    path.write_text(page)
    dom, console = render_in_browser(path)
    assert console == []
    assert "<script" not in page.lower()
    figures = Figures()
    figures.feed(dom)
    assert set(figures.marks) == {
        "bytes_out",
        "bytes_in",
        "stream",
        "country",
        "peak_viewers",
        "stream-peak",
    }
    peaks = {
        m["data-period"]: (m.get("data-value"), m["data-state"])
        for m in figures.marks["peak_viewers"]
    }
    # The most at once (30), never the sum (42); a read hour without viewers is 0.
    assert peaks["2026-11-25T10:00:00Z"] == ("30", "final")
    assert peaks["2026-11-25T11:00:00Z"] == ("0", "final")
    assert peaks["2026-11-25T12:00:00Z"] == ("0", "partial")
    assert peaks["2026-11-25T08:00:00Z"] == (None, "not archived")
    watched = [(m["data-stream-peak"], m["data-value"]) for m in figures.marks["stream-peak"]]
    assert watched == [("<b>cam</b>", "30")]
    egress = {
        m["data-period"]: (m.get("data-value"), m["data-state"]) for m in figures.marks["bytes_out"]
    }
    # The archive as written by the fixture: two final hours, a partial one, a gap, the rest 0.
    assert egress["2026-11-25T10:00:00Z"] == ("1500000000", "final")
    assert egress["2026-11-25T11:00:00Z"] == ("2000", "final")
    assert egress["2026-11-25T12:00:00Z"] == ("0", "final")
    assert egress["2026-11-25T13:00:00Z"] == (None, "not archived")
    assert egress["2026-11-26T01:00:00Z"] == ("7", "partial")
    assert egress["2026-11-25T08:00:00Z"] == (None, "not archived")
    ingest = {m["data-period"]: m.get("data-value") for m in figures.marks["bytes_in"]}
    assert ingest["2026-11-25T10:00:00Z"] == "500000000"
    streams = [(m["data-stream"], int(m["data-value"])) for m in figures.marks["stream"]]
    assert streams == [("b", 10**12), ("c", 500), ("<script>x</script>", 99), ("a", 30)]
    places = [(m["data-country"], int(m["data-value"])) for m in figures.marks["country"]]
    assert places == [("US", 40), ("FR", 7)]
    assert re.search(r"1 partial period\(s\)", dom)


def test_cli_writes_the_page(tmp_path: Path) -> None:
    import sys

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    empty = db.make_engine(url)
    db.upgrade(empty)  # report only reads: the archive must exist
    empty.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "archiver", "report", "--format", "html", "--output", "u.html"],
        env={**os.environ, "ARCHIVER_DATABASE_URL": url},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "u.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "not archived" in page
    assert "http://" not in page
    assert "https://" not in page
