"""`archiver report --metric`: peak viewers and views started, states told, on both databases."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from archiver.datasets import ACCOUNT_VIEWER_STATS, STREAM_VIEWER_STATS
from archiver.errors import InputError
from archiver.reading.audience import (
    audience_report,
    render_audience,
    render_audience_streams,
    top_audience,
)
from archiver.reading.report import FINAL, NOT_ARCHIVED, PARTIAL, SOME_NOT_ARCHIVED
from archiver.store import db
from archiver.store.db import transaction
from archiver.store.query_rows import save_rows
from archiver.store.viewer_stats import (
    ACCOUNT_KEY,
    move_viewer_watermarks,
)
from tests.processes import Ran

D20 = datetime(2026, 11, 20, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
# The account read from 10:00 on Nov 20: final up to 12:00, read (not final) up to 12:40.
WATERMARK, READ_AT = D20 + 12 * H, D20 + 12 * H + 40 * M


def stat(start: datetime, active: int, started: int, **extra: Any) -> dict[str, Any]:
    return {
        "period_start": start,
        "active_viewers": active,
        "views_started": started,
        "views_ended": 0,
        "fetched_at": READ_AT,
        "is_final": start + 5 * M <= WATERMARK,
        **extra,
    }


ACCOUNT = [
    stat(D20 + 10 * H, 40, 40, streams=2),
    stat(D20 + 10 * H + 5 * M, 25, 3, streams=2),
    stat(D20 + 10 * H + 55 * M, 60, 10, streams=3),
    stat(D20 + 12 * H + 10 * M, 8, 8, streams=1),
]
STREAMS = [
    stat(D20 + 10 * H, 30, 30, stream_name="big"),
    stat(D20 + 10 * H + 5 * M, 1, 1, stream_name="big"),
    stat(D20 + 10 * H + 55 * M, 20, 20, stream_name="wide"),
    stat(D20 + 11 * H, 20, 20, stream_name="wide"),
]


def fill(engine: Engine) -> Engine:
    """The account and two streams watched on Nov 20, read up to READ_AT."""
    with transaction(engine) as conn:
        save_rows(conn, ACCOUNT_VIEWER_STATS, ACCOUNT)
        save_rows(conn, STREAM_VIEWER_STATS, STREAMS)
        move_viewer_watermarks(
            conn, ACCOUNT_VIEWER_STATS.dataset, [ACCOUNT_KEY], WATERMARK, READ_AT
        )
        move_viewer_watermarks(
            conn, STREAM_VIEWER_STATS.dataset, ["big", "wide"], WATERMARK, READ_AT
        )
    return engine


@pytest.fixture
def watched(engine: Engine) -> Engine:
    return fill(engine)


def report(engine: Engine, by: str, metric: str, stream: str | None = None) -> list[Any]:
    with engine.connect() as conn:
        rows = audience_report(
            conn, stream=stream, start=D20 + 8 * H, stop=D20 + 14 * H, by=by, metric=metric
        )
    return [(r.period[-9:-4] if by == "hour" else r.period, r.value, r.state) for r in rows]


def test_hours_peak_is_the_highest_period_and_views_the_sum(watched: Engine) -> None:
    # Before the first row nothing tells "no viewers" from "never read"; after the last
    # read nothing was read; a period read but not settled is partial; a read hour is 0.
    assert report(watched, "hour", "peak-viewers") == [
        ("08:00", None, NOT_ARCHIVED),
        ("10:00", 60, FINAL),
        ("11:00", 0, FINAL),
        ("12:00", 8, PARTIAL),
        ("13:00", None, NOT_ARCHIVED),
    ]
    assert [r[1] for r in report(watched, "hour", "views-started")] == [None, 53, 0, 8, None]
    assert report(watched, "day", "peak-viewers") == [("2026-11-20", 60, PARTIAL)]
    assert report(watched, "month", "views-started") == [("2026-11", 61, PARTIAL)]
    # The stream's first row is at 10:55: the rest of that hour may never have been read.
    assert report(watched, "hour", "peak-viewers", "wide")[1:3] == [
        ("10:00", 20, SOME_NOT_ARCHIVED),
        ("11:00", 20, FINAL),
    ]
    # Read after its watermark without a row: nobody watching yet, and not settled.
    assert report(watched, "hour", "peak-viewers", "big")[1:4] == [
        ("10:00", 30, FINAL),
        ("11:00", 0, FINAL),
        ("12:00", 0, PARTIAL),
    ]


def test_a_day_begun_before_the_first_row_is_part_not_archived(watched: Engine) -> None:
    with transaction(watched) as conn:
        move_viewer_watermarks(
            conn, ACCOUNT_VIEWER_STATS.dataset, [ACCOUNT_KEY], D20 + 30 * H, D20 + 30 * H
        )
        save_rows(
            conn,
            ACCOUNT_VIEWER_STATS,
            [stat(D20 + 12 * H + 10 * M, 8, 8, streams=1, is_final=True)],
        )
    with watched.connect() as conn:
        rows = audience_report(
            conn, stream=None, start=D20, stop=D20 + 24 * H, by="day", metric="peak-viewers"
        )
    assert [(r.value, r.state) for r in rows] == [(60, SOME_NOT_ARCHIVED)]


def test_streams_ranked_by_their_highest_peak_or_their_views(watched: Engine) -> None:
    with watched.connect() as conn:
        peak, first, last = top_audience(
            conn, start=D20, stop=D20 + H, top=5, metric="peak-viewers"
        )
        views, _, _ = top_audience(conn, start=D20, stop=D20 + H, top=1, metric="views-started")
    # By peak the burst wins (30 at once); by views started the steady stream (20 + 20).
    assert [(r.stream, r.value) for r in peak] == [("big", 30), ("wide", 20)]
    assert [(r.stream, r.value) for r in views] == [("wide", 40)]
    text = render_audience_streams(peak, first, last, "peak-viewers", "table")
    assert "the most watching at once" in text
    assert "2026-11-20 to 2026-11-20" in text


def test_output_says_which_figure_it_is(watched: Engine) -> None:
    with watched.connect() as conn:
        rows = audience_report(
            conn,
            stream=None,
            start=D20 + 10 * H,
            stop=D20 + 13 * H,
            by="hour",
            metric="peak-viewers",
        )
    table = render_audience(rows, "peak-viewers", "hour", "the whole account", "table")
    assert table.splitlines()[0].startswith("peak concurrent viewers: the most watching at once")
    # 60, 0 and 8 at once: the range's peak is 60 (a sum would say 68).
    assert table.splitlines()[-1].split()[:5] == ["peak", "of", "the", "range", "60"]
    summed = render_audience(rows, "views-started", "hour", "the whole account", "table")
    assert summed.splitlines()[0].startswith("views started: the views that began, summed")
    records = json.loads(render_audience(rows, "peak-viewers", "hour", "", "json"))
    assert records[0] == {
        "period": "2026-11-20T10:00:00Z",
        "through": None,
        "peak_viewers": 60,
        "state": FINAL,
    }
    assert render_audience(rows, "views-started", "hour", "", "csv").splitlines()[0] == (
        "period,through,views_started,state"
    )


def test_unknown_stream_is_an_error(watched: Engine) -> None:
    with pytest.raises(InputError, match="no stream 'nope'"), watched.connect() as conn:
        audience_report(
            conn, stream="nope", start=D20, stop=D20 + H, by="hour", metric="peak-viewers"
        )


def test_readme_audience_commands_run_as_written(tmp_path: Path, cli: Callable[..., Ran]) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = re.findall(r"`archiver (report --metric [^`|]*)`", readme)
    assert len(commands) >= 2
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    fill(engine).dispose()
    for command in commands:
        result = cli(command.split(), tmp_path, ARCHIVER_DATABASE_URL=url)
        assert result.returncode == 0, (command, result.stderr)
        assert "peak concurrent viewers: the most watching at once" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "peak-viewers", "--format", "html"], "--format html charts bytes and peak"),
        (["--metric", "views-started", "--by", "stream", "--stream", "a"], "--by stream ranks"),
        (["--metric", "viewers"], "argument --metric: invalid choice"),
    ],
)
def test_audience_argument_mistakes_touch_nothing(
    tmp_path: Path, args: list[str], message: str, cli: Callable[..., Ran]
) -> None:
    path = tmp_path / "never.db"
    result = cli(["report", *args], tmp_path, ARCHIVER_DATABASE_URL=f"sqlite:///{path}")
    assert result.returncode != 0
    assert message in result.stderr
    assert not path.exists()
