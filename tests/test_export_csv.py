"""`archiver export` CSV, written by the database, equals what csv.writer writes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.reading.export import export_rows, write_export
from archiver.store.tables import stream_usage, sync_runs, tracked_streams

AT = datetime(2026, 11, 25, 10, tzinfo=UTC)
# Names a publisher may choose: each needs quoting, neutralising, or neither.
NAMES = [
    "plain",
    "with,comma",
    'with"quote',
    '=HYPERLINK("evil.example";"x")',
    "+plus",
    "-minus",
    "@at",
    "ünïcødé-名前",
    "a'b",
]
# Notes (free text) that break rows or spreadsheets when written carelessly. A bare CR is left
# to the round-trip test: Python's own csv writer quotes it only from 3.11.9 on.
NOTES = [None, "", "two\nlines", "crlf\r\nline", "\t=tab first", "-1", "  spaced ", "%s%d%%"]


def _spelt(value: Any) -> str:
    """A cell as the CSV promises it, decided here without the code under test."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return str(value)


def _reference(engine: Engine, table: sa.Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in table.columns])
    with engine.connect() as conn:
        for row in conn.execute(sa.select(table)):
            writer.writerow([_spelt(v) for v in row])
    return out.getvalue()


def _exported(engine: Engine, name: str) -> tuple[str, int]:
    out = io.StringIO()
    with engine.connect() as conn:
        count = write_export(export_rows(conn, name), "csv", out)
    return out.getvalue(), count


@pytest.mark.parametrize("table", [tracked_streams, stream_usage], ids=lambda t: t.name)
def test_csv_export_is_what_csv_writer_writes(engine: Engine, table: sa.Table) -> None:
    with engine.begin() as conn:
        for i, name in enumerate(NAMES):
            conn.execute(
                tracked_streams.insert().values(
                    stream_name=name,
                    source="config",
                    status="active",
                    added_at=AT,
                    last_seen_at=None if i % 2 else AT,
                    note=NOTES[i % len(NOTES)],
                )
            )
            conn.execute(
                stream_usage.insert().values(
                    stream_name=name,
                    resolution="Hour",
                    period_start=AT,
                    bytes_in=i,
                    bytes_out=10**15 + i,
                    standard_bytes_in=None if i % 2 else i,
                    fetched_at=AT,
                    is_final=bool(i % 2),
                )
            )
    text, count = _exported(engine, table.name)
    assert count == len(NAMES)
    assert text == _reference(engine, table)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["stream_name"] for r in parsed) == sorted(_spelt(n) for n in NAMES)


def test_reals_are_written_exactly_and_numbers_never_neutralised(engine: Engine) -> None:
    # Each database spells floats its own way (SQLite 1/3 to 15 digits, COPY 2.0 as `2`):
    # the CSV holds them as JSON and Python write them, on both.
    skews = [1 / 3, -7200.123456789012, 0.1, None, 1e-7, 2.0, -86400.0]
    # Text on this (Python) path is neutralised too: each formula prefix once.
    problems = ["=1", "+1", "-x", "@SUM(A1)", "\tt", None, None]
    with engine.begin() as conn:
        for i, skew in enumerate(skews):
            conn.execute(
                sync_runs.insert().values(
                    kind="sync",
                    started_at=AT,
                    finished_at=None if i % 2 else AT,
                    status="ok",
                    requests=-i,  # a negative number is a number, not a formula
                    failed_requests=0,
                    rows_written=0,
                    gaps=0,
                    error=None if i % 2 else f"-{i}, =SUM(A1)",
                    clock_skew_seconds=skew,
                    clock_problem=problems[i],
                )
            )
    text, count = _exported(engine, "sync_runs")
    assert count == len(skews)
    assert text == _reference(engine, sync_runs)
    assert "0.3333333333333333" in text
    assert ",-2," in text
    # clock_problem (empty) follows clock_skew_seconds.
    assert ",2.0,\n" in text
    assert ",-86400.0,\n" in text
    assert ",'@SUM(A1)\n" in text


def test_every_awkward_text_reads_back_as_written(engine: Engine) -> None:
    texts = ["", "a\rb", "a\nb", "x\r\ny", '"', ",", "\r=", "=1+2", "\u202e", "é" * 3000]
    with engine.begin() as conn:
        for i, text in enumerate(texts):
            conn.execute(
                tracked_streams.insert().values(
                    stream_name=f"s{i}", source="config", status="active", added_at=AT, note=text
                )
            )
    exported, count = _exported(engine, "tracked_streams")
    assert count == len(texts)
    rows = list(csv.DictReader(io.StringIO(exported, newline="")))
    assert [r["note"] for r in rows] == [_spelt(t) for t in texts]


def test_an_empty_table_is_its_header(engine: Engine) -> None:
    text, count = _exported(engine, "tracked_streams")
    assert count == 0
    assert text == ",".join(c.name for c in tracked_streams.columns) + "\n"
