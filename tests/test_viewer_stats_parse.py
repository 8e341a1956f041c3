"""The strict parser of the vendor's viewer statistics: each bad row refused, the others kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from archiver.api.viewers import parse_account_stats, parse_stream_stats

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def stat(name: str = "cam", start: str = "12:00", end: str = "12:05", **counts: Any) -> Any:
    return {
        "streamId": f"acct/{name}",
        "from": f"2026-11-20T{start}:00.000Z",
        "to": f"2026-11-20T{end}:00.000Z",
        **{"active": 3, "numStarted": 4, "numEnded": 1, **counts},
    }


def account_stat(**fields: Any) -> Any:
    row = {k: v for k, v in stat(**fields).items() if k != "streamId"}
    return {"accountId": "acct", "streams": 2, **row, **fields.get("extra", {})}


def test_a_sound_page_becomes_archive_rows() -> None:
    read = parse_stream_stats([stat(), stat("b", "12:05", "12:10", active=0)], {"cam", "b"}, None)
    assert read.refused == []
    assert read.account == "acct"
    assert read.rows == [
        {
            "stream_name": "cam",
            "period_start": T0,
            "active_viewers": 3,
            "views_started": 4,
            "views_ended": 1,
        },
        {
            "stream_name": "b",
            "period_start": T0.replace(minute=5),
            "active_viewers": 0,
            "views_started": 4,
            "views_ended": 1,
        },
    ]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (stat(active=-1), "active -1 is not a non-negative integer"),
        (stat(numStarted=2.5), "numStarted 2.5 is not"),
        (stat(numEnded="3"), "numEnded '3' is not"),
        (stat(active=True), "active True is not"),
        (stat(active=None), "active None is not"),
        (stat(end="12:10"), "is not 5 minutes"),
        (stat(start="12:02", end="12:07"), "not on the 5-minute grid"),
        (
            {**stat(), "from": "2026-11-20T12:00:30Z", "to": "2026-11-20T12:05:30Z"},
            "not on the 5-minute grid",
        ),
        (stat(start="noon"), "from 2026-11-20Tnoon:00.000Z is not ISO 8601"),
        ({**stat(), "streamId": "other/cam"}, "names another account"),
        ({**stat(), "streamId": "acct-cam"}, "is not <accountId>/<name>"),
        (stat("stranger"), "stream stranger was not asked for"),
        ("row", "no streamId"),
    ],
)
def test_a_bad_row_is_refused_with_its_reason_and_the_others_kept(bad: Any, reason: str) -> None:
    sound = [stat(), stat(start="12:10", end="12:15"), stat(start="12:20", end="12:25")]
    read = parse_stream_stats([sound[0], bad, *sound[1:]], {"cam"}, None)
    assert len(read.refused) == 1
    assert read.refused[0].startswith("stream viewer stat row 2 refused: ")
    assert reason in read.refused[0]
    assert [r["period_start"].minute for r in read.rows] == [0, 10, 20]


def test_the_account_asked_for_is_the_one_rows_must_name() -> None:
    read = parse_stream_stats([{**stat(), "streamId": "other/cam"}], {"cam"}, "acct")
    assert read.rows == []
    assert "names another account" in read.refused[0]


def test_account_stats_count_the_streams_and_refuse_bad_rows() -> None:
    rows = [
        account_stat(),
        account_stat(start="12:05", end="12:10", streams=-2),
        account_stat(start="12:10", end="12:15", accountId="other"),
        account_stat(start="12:15", end="12:20", active=1.5),
    ]
    read = parse_account_stats(rows)
    assert read.account == "acct"
    assert read.rows == [
        {
            "period_start": T0,
            "active_viewers": 3,
            "views_started": 4,
            "views_ended": 1,
            "streams": 2,
        }
    ]
    assert [r.split(":")[0] for r in read.refused] == [
        f"account viewer stat row {n} refused" for n in (2, 3, 4)
    ]
