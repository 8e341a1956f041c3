"""Settings validate themselves and keep the token secret."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from archiver.config import Settings, get_settings
from archiver.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "archiver.env.example"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = get_settings()
    assert settings.database_url == "sqlite:///archiver.db"
    assert settings.api_base_url == "https://api.millicast.com"
    assert settings.schedule_minutes == "2,17,32,47"
    assert settings.streams == []


def test_streams_are_split_on_commas_and_stay_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_STREAMS", " main , 360,,feed_1 ")
    assert get_settings().streams == ["main", "360", "feed_1"]


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ARCHIVER_CONCURRENCY=3\n")
    assert get_settings().concurrency == 3


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ARCHIVER_CONCURRENCY", "zero", "ARCHIVER_CONCURRENCY"),
        ("ARCHIVER_CONCURRENCY", "0", "greater than or equal to 1"),
        ("ARCHIVER_API_BASE_URL", "http://api.example.com", "must use https"),
        ("ARCHIVER_DATABASE_URL", "mysql://x/y", "ARCHIVER_DATABASE_URL"),
        ("ARCHIVER_SCHEDULE_MINUTES", "2,61", "minutes 0-59"),
        ("ARCHIVER_NOW", "yesterday", "ARCHIVER_NOW"),
        ("ARCHIVER_LOG_FORMAT", "xml", "ARCHIVER_LOG_FORMAT"),
    ],
)
def test_bad_values_give_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        get_settings()
    message = str(info.value)
    assert expected in message
    assert name in message
    assert "\n" not in message


def test_http_is_allowed_to_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_API_BASE_URL", "http://127.0.0.1:8080/")
    assert get_settings().api_base_url == "http://127.0.0.1:8080"
    monkeypatch.setenv("ARCHIVER_API_BASE_URL", "http://localhost:8080")
    assert get_settings().api_base_url == "http://localhost:8080"


def test_postgres_urls_use_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_DATABASE_URL", "postgres://u@h/db")
    assert get_settings().database_url == "postgresql+psycopg://u@h/db"


def test_token_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_API_TOKEN", "tok-very-secret-123")
    settings = get_settings()
    assert "tok-very-secret-123" not in repr(settings)
    assert "tok-very-secret-123" not in str(settings)
    assert "tok-very-secret-123" not in settings.model_dump_json()
    assert settings.require_token() == "tok-very-secret-123"


def test_a_missing_token_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="ARCHIVER_API_TOKEN is not set"):
        get_settings().require_token()


def test_every_setting_is_documented_in_config() -> None:
    documented = set(re.findall(r"^ARCHIVER_([A-Z_]+)=", EXAMPLE.read_text(), re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert documented == fields
