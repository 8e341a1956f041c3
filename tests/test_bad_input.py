"""Bad input gets one clear line and a non-zero exit, never a traceback, and writes nothing.

The commands run in-process (fast); `tests/test_cli.py` covers the same path as real processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.cli import main

TOKEN = "tok-0123456789"

# (arguments, settings, a phrase the one line must contain)
CASES: list[tuple[list[str], dict[str, str], str]] = [
    (["backfill", "--end", "9999-12-31", "--dry-run"], {}, "invalid --end '9999-12-31'"),
    (["backfill", "--start", "0001-01-01", "--dry-run"], {}, "invalid --start '0001-01-01'"),
    (["backfill", "--end", "2026-13-01"], {}, "invalid --end"),
    (["report", "--to", "0001-01-01"], {}, "invalid --to"),
    (["report", "--from", "2199-01-01"], {}, "--from must be before --to"),
    (["simulate", "--port", "70000"], {}, "not a port number"),
    (["demo", "--streams", "0"], {}, "from 1 to"),
    (["demo", "--days", "-1"], {}, "from 1 to"),
    (["status"], {"ARCHIVER_REQUEST_TIMEOUT_SECONDS": "inf"}, "ARCHIVER_REQUEST_TIMEOUT_SECONDS"),
    (["sync"], {"ARCHIVER_MAX_REQUESTS_PER_SECOND": "1e-9"}, "ARCHIVER_MAX_REQUESTS_PER_SECOND"),
    (["run"], {"ARCHIVER_METRICS_PORT": "70000"}, "ARCHIVER_METRICS_PORT"),
    (["backfill", "--dry-run"], {"ARCHIVER_NOW": "9999-12-31T23:00:00Z"}, "ARCHIVER_NOW"),
    (["backfill", "--dry-run"], {"ARCHIVER_MONTH_HISTORY_MONTHS": "100000"}, "MONTH_HISTORY"),
    (
        ["backfill", "--dry-run"],
        {"ARCHIVER_MAX_BUCKETS_PER_REQUEST": "100000000000000000000"},
        "ARCHIVER_MAX_BUCKETS_PER_REQUEST",
    ),
    (["sync"], {"ARCHIVER_RETENTION_MARGIN_MINUTES": "20000"}, "RETENTION_MARGIN"),
    (["sync"], {"ARCHIVER_API_TOKEN": "t"}, "ARCHIVER_API_TOKEN is too short"),
    (["sync"], {"ARCHIVER_API_TOKEN": "tök-0123456789"}, "ARCHIVER_API_TOKEN"),
    (["sync"], {"ARCHIVER_DATABASE_URL": "sqlite://"}, "in-memory SQLite"),
    (["status"], {"ARCHIVER_DATABASE_URL": "sqlite:///missing.db"}, "no archive at missing.db"),
    (["streams", "import", "missing.txt"], {}, "cannot read missing.txt"),
    (["export", "--table", "stream_usage", "--output", "/nonexistent/x.csv"], {}, "no archive"),
    (["status"], {"ARCHIVER_DATABASE_URL": "sqlite:///."}, "is not a file"),
    (["status"], {"ARCHIVER_DATABASE_URL": "sqlite:///file:x.db?uri=true"}, "URI-style"),
    (["status"], {"ARCHIVER_DATABASE_URL": "postgresql+nosuchdriver://u@h/d"}, "cannot use"),
    (["sync"], {"ARCHIVER_DATABASE_URL": "postgresql+nosuchdriver://u@h/d"}, "cannot use"),
    (["demo", "--streams", "100000000"], {}, "from 1 to 200"),
    (["demo", "--days", "10000000"], {}, "from 1 to 14"),
]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ARCHIVER_API_TOKEN", TOKEN)
    monkeypatch.setenv("ARCHIVER_DATABASE_URL", "sqlite:///archive.db")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.parametrize(("args", "env", "phrase"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_clear_line(
    args: list[str],
    env: dict[str, str],
    phrase: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert phrase in lines[0]
    assert "Traceback" not in err
    assert TOKEN not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_file_that_is_not_an_archive_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "archive.db").write_text("not a database, just text\n" * 100)
    before = (tmp_path / "archive.db").read_bytes()
    for command in (["status"], ["health"], ["streams", "list"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert "cannot read the archive" in err
    assert (tmp_path / "archive.db").read_bytes() == before


def test_report_never_writes_onto_the_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archiver.store import db

    engine = db.make_engine("sqlite:///archive.db")
    db.upgrade(engine)
    engine.dispose()
    before = (tmp_path / "archive.db").read_bytes()
    code = main(["report", "--format", "html", "--output", "archive.db"])
    assert code == 1
    assert "refusing to write onto the database file" in capsys.readouterr().err
    assert (tmp_path / "archive.db").read_bytes() == before
