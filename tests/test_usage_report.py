"""`archiver report`: every period shown, zero told from not archived, partial periods marked."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.errors import InputError
from archiver.reading.report import (
    FINAL,
    NOT_ARCHIVED,
    PARTIAL,
    SOME_NOT_ARCHIVED,
    PeriodRow,
    human_bytes,
    render_periods,
    render_streams,
    top_streams,
    usage_report,
)
from archiver.rules.plan import Policy
from archiver.store import db
from archiver.store.tables import account_usage, stream_usage, sync_gaps, sync_state
from archiver.store.upsert import upsert_rows
from tests.processes import Ran
from tests.test_query_times import usage

H = timedelta(hours=1)
D25 = datetime(2026, 11, 25, tzinfo=UTC)
READ_AT = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
# A vendor keeping 16 hours, read first at READ_AT: the archive starts at 10:00 on Nov 25.
POLICY = Policy(hour_retention=16 * H, margin=timedelta(minutes=30))


@pytest.fixture
def archive(engine: Engine) -> Engine:
    """The account archived from 10:00 on Nov 25 to 01:30 on Nov 26, 13:00-15:00 lost."""
    hours = [
        usage(None, "Hour", D25 + 10 * H, 1_500_000_000),
        usage(None, "Hour", D25 + 11 * H, 2_000),
        usage(None, "Hour", D25 + 25 * H, 7, final=False),
    ]
    days = [usage(s, "Day", D25, out) for s, out in (("a", 30), ("b", 10**12), ("c", 500))]
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=account_usage, rows=hours)
        upsert_rows(conn=conn, table=stream_usage, rows=days)
        conn.execute(
            sa.insert(sync_state).values(
                dataset="account_usage",
                stream_name="",
                resolution="Hour",
                watermark=D25 + 25 * H,
                last_success_at=READ_AT,
            )
        )
        conn.execute(
            sa.insert(sync_gaps).values(
                dataset="account_usage",
                stream_name="",
                resolution="Hour",
                gap_start=D25 + 13 * H,
                gap_stop=D25 + 15 * H,
                recorded_at=READ_AT,
            )
        )
    return engine


def test_hours_tell_zero_from_not_archived(archive: Engine) -> None:
    with archive.connect() as conn:
        rows = usage_report(
            conn, stream=None, start=D25 + 8 * H, stop=D25 + 27 * H, by="hour", policy=POLICY
        )
    zero = [
        PeriodRow(f"2026-11-25T{h:02d}:00:00Z", None, 0, 0, FINAL) for h in (12, *range(15, 24))
    ]
    assert rows == [
        PeriodRow("2026-11-25T08:00:00Z", "2026-11-25T09:00:00Z", None, None, NOT_ARCHIVED),
        PeriodRow("2026-11-25T10:00:00Z", None, 500_000_000, 1_500_000_000, FINAL),
        PeriodRow("2026-11-25T11:00:00Z", None, 666, 2_000, FINAL),
        zero[0],
        PeriodRow("2026-11-25T13:00:00Z", "2026-11-25T14:00:00Z", None, None, NOT_ARCHIVED),
        *zero[1:],
        PeriodRow("2026-11-26T00:00:00Z", None, 0, 0, FINAL),
        PeriodRow("2026-11-26T01:00:00Z", None, 2, 7, PARTIAL),
        PeriodRow("2026-11-26T02:00:00Z", "2026-11-26T02:00:00Z", None, None, NOT_ARCHIVED),
    ]


def test_days_and_months_are_labelled_and_partial(archive: Engine) -> None:
    with archive.connect() as conn:
        days = usage_report(
            conn, stream=None, start=D25 - 24 * H, stop=D25 + 72 * H, by="day", policy=POLICY
        )
        months = usage_report(
            conn,
            stream=None,
            start=datetime(2026, 10, 5, tzinfo=UTC),
            stop=D25,
            by="month",
            policy=POLICY,
        )
    assert days == [
        PeriodRow("2026-11-24", "2026-11-24", None, None, NOT_ARCHIVED),
        # Archived from 10:00 only, and two hours lost: every archived hour is final (as the
        # view says), but the sum of the hours is not the day.
        PeriodRow("2026-11-25", None, 500_000_666, 1_500_002_000, SOME_NOT_ARCHIVED),
        PeriodRow("2026-11-26", None, 2, 7, PARTIAL),
        PeriodRow("2026-11-27", "2026-11-27", None, None, NOT_ARCHIVED),
    ]
    assert months == [
        PeriodRow("2026-10", "2026-10", None, None, NOT_ARCHIVED),
        PeriodRow("2026-11", None, 0, 0, PARTIAL),  # no Month row archived: zero, partial
    ]


def test_table_uses_human_units_and_machine_formats_exact_integers(archive: Engine) -> None:
    with archive.connect() as conn:
        rows = usage_report(
            conn, stream=None, start=D25 + 10 * H, stop=D25 + 11 * H, by="hour", policy=POLICY
        )
    table = render_periods(rows, "table").splitlines()
    assert table[1].split() == ["2026-11-25T10:00:00Z", "500", "MB", "1.5", "GB"]
    assert table[-1].split() == ["total", "500", "MB", "1.5", "GB"]
    assert json.loads(render_periods(rows, "json"))[0]["bytes_out"] == 1_500_000_000
    assert render_periods(rows, "csv").splitlines() == [
        "period,through,bytes_in,bytes_out,state",
        "2026-11-25T10:00:00Z,,500000000,1500000000,final",
    ]
    assert [human_bytes(v) for v in (0, 999, 1000, 48_902_406_323_901)] == [
        "0 B",
        "999 B",
        "1 kB",
        "48.9 TB",
    ]


def test_unknown_stream_is_an_error(archive: Engine) -> None:
    with archive.connect() as conn, pytest.raises(InputError, match="no stream 'nope'"):
        usage_report(conn, stream="nope", start=D25, stop=D25 + 24 * H, by="day")


def test_top_streams_by_egress(archive: Engine) -> None:
    with archive.connect() as conn:
        ranking, first, last = top_streams(conn, start=D25 + 5 * H, stop=D25 + 6 * H, top=2)
    assert [(r.rank, r.stream, r.bytes_out) for r in ranking] == [(1, "b", 10**12), (2, "c", 500)]
    assert (first, last) == (D25, D25 + 24 * H)
    assert render_streams(ranking, first, last, "table").splitlines()[-1] == (
        "over the whole UTC days 2026-11-25 to 2026-11-25"
    )


def test_cli_unknown_stream_exits_1(tmp_path: Path, cli: Callable[..., Ran]) -> None:
    database_url = f"sqlite:///{tmp_path / 'empty.db'}"
    empty = db.make_engine(database_url)
    db.upgrade(empty)  # report only reads: the archive must exist
    empty.dispose()
    result = cli(["report", "--stream", "nope"], tmp_path, ARCHIVER_DATABASE_URL=database_url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "archiver: error: no stream 'nope' in the archive (see `archiver streams list`); "
        "nothing to report"
    ]


@pytest.mark.parametrize("table", ["stream_usage", "stream_daily_usage", "account_daily_usage"])
def test_export_spells_booleans_and_times_alike(archive: Engine, table: str) -> None:
    import csv
    import io

    from archiver.reading.export import export_rows, write_export

    with archive.connect() as conn:
        jsonl, text = io.StringIO(), io.StringIO()
        write_export(export_rows(conn, table), "jsonl", jsonl)
        write_export(export_rows(conn, table), "csv", text)
    records = [json.loads(line) for line in jsonl.getvalue().splitlines()]
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))
    time = "period_start" if table == "stream_usage" else "day"
    assert records
    assert {type(r["is_final"]) for r in records} == {bool}
    assert {r["is_final"] for r in rows} <= {"true", "false"}
    assert [r["is_final"] for r in rows] == [str(r["is_final"]).lower() for r in records]
    for record, row in zip(records, rows, strict=True):
        assert record[time] == row[time]
        assert datetime.strptime(record[time], "%Y-%m-%dT%H:%M:%SZ")


def test_json_outputs_write_times_one_way(tmp_path: Path, cli: Callable[..., Ran]) -> None:
    import re

    url = f"sqlite:///{tmp_path / 'a.db'}"

    def run(*args: str) -> str:
        result = cli(list(args), tmp_path, ARCHIVER_DATABASE_URL=url)
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("streams", "add", "stream-a")
    texts = run("streams", "list", "--json") + run("status", "--json")
    times = re.findall(r'"(\d{4}-\d\d-\d\d[^"]*)"', texts)
    assert times, "no time in the outputs: the test would prove nothing"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in times), times


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "stream", "--stream", "a"], "--by stream ranks every stream"),
        (["--format", "html", "--stream", "a"], "--format html charts the whole account"),
        (["--by", "stream", "--top", "0"], "--top must be at least 1"),
    ],
)
def test_report_argument_mistakes_touch_nothing(
    tmp_path: Path, args: list[str], message: str, cli: Callable[..., Ran]
) -> None:
    path = tmp_path / "never.db"
    result = cli(["report", *args], tmp_path, ARCHIVER_DATABASE_URL=f"sqlite:///{path}")
    assert result.returncode == 1
    assert result.stderr.startswith(f"archiver: error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not path.exists()
