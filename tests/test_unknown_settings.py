"""Misspelt `ARCHIVER_*` names: an error in .env, a warning in the environment (issue #25)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.config import get_settings
from tests.processes import Ran

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "archiver.env.example"


def _files(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


@pytest.mark.parametrize("command", [["sync"], ["backfill"], ["db", "upgrade"], ["status"]])
def test_a_misspelt_name_in_dotenv_is_an_error_naming_the_setting_and_nothing_is_written(
    tmp_path: Path, cli: Callable[..., Ran], command: list[str]
) -> None:
    (tmp_path / ".env").write_text(
        "ARCHIVER_API_TOKEN=simulator-token\nARCHIVER_DATABSE_URL=sqlite:///elsewhere.db\n"
    )
    result = cli(command, tmp_path)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "archiver: error: unknown setting ARCHIVER_DATABSE_URL in .env: did you mean "
        "ARCHIVER_DATABASE_URL?"
    ]
    assert result.stdout == ""
    assert _files(tmp_path) == {".env"}  # no ./archiver.db, no elsewhere.db


def test_every_unknown_name_in_dotenv_gets_its_own_line(
    tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    (tmp_path / ".env").write_text(
        "# a comment\n"
        "archiver_concurency=4\n"
        "ARCHIVER_SCHEDULE_MINUTES=5\n"
        "ARCHIVER_WHATEVER_ELSE=1\n"
        "OTHER_PROGRAM_SETTING=1\n"
        "ARCHIVER_CONCURRENCY=zero\n"
    )
    result = cli(["sync"], tmp_path)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "archiver: error: unknown setting archiver_concurency in .env: did you mean "
        "ARCHIVER_CONCURRENCY?",
        "archiver: error: unknown setting ARCHIVER_WHATEVER_ELSE in .env (config/archiver.env"
        ".example lists every setting)",
        "archiver: error: invalid setting ARCHIVER_CONCURRENCY: Input should be a valid "
        "integer, unable to parse string as an integer",
    ]
    assert _files(tmp_path) == {".env"}


def test_a_misspelt_name_in_the_environment_is_a_warning_and_the_command_goes_on(
    tmp_path: Path, cli: Callable[..., Ran], database_url: str
) -> None:
    result = cli(
        ["status"],
        tmp_path,
        ARCHIVER_DATABASE_URL=database_url,
        ARCHIVER_HOUR_RETENTON_DAYS="3",
        ARCHIVER_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1/postgres",
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "unknown setting" in line]
    assert len(warnings) == 1
    assert "WARNING" in warnings[0]
    assert warnings[0].endswith(
        "unknown setting ARCHIVER_HOUR_RETENTON_DAYS in the environment, ignored: did you "
        "mean ARCHIVER_HOUR_RETENTION_DAYS?"
    )
    assert "last success:" in result.stdout


def test_the_shipped_example_as_dotenv_has_no_unknown_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("ARCHIVER_")]:
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text(EXAMPLE.read_text())
    assert get_settings().warnings == ()
    monkeypatch.setenv("ARCHIVER_STREAM", "a,b")
    assert get_settings().warnings == (
        "unknown setting ARCHIVER_STREAM in the environment, ignored: did you mean "
        "ARCHIVER_STREAMS?",
    )


def test_names_are_checked_when_settings_are_built_not_at_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("ARCHIVER_")]:
        monkeypatch.delenv(name)
    assert get_settings().warnings == ()
    (tmp_path / ".env").write_text("ARCHIVER_LOG_LEVL=DEBUG\n")
    with pytest.raises(Exception, match="did you mean ARCHIVER_LOG_LEVEL"):
        get_settings()


def test_a_dotenv_that_is_not_text_is_one_line(tmp_path: Path, cli: Callable[..., Ran]) -> None:
    (tmp_path / ".env").write_bytes(b"ARCHIVER_NOW=\xff\xfe\n")
    result = cli(["status"], tmp_path)
    assert result.returncode != 0
    assert result.stderr.splitlines() == ["archiver: error: cannot read .env: not UTF-8 text"]
