"""Settings validate themselves and keep the token secret."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.api.client import AnalyticsClient
from archiver.api.options import ClientOptions
from archiver.api.retry import RetryPolicy
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
    # The plain values the API client is built from carry it, and never show it either.
    options = settings.client_options()
    assert options.token == "tok-very-secret-123"
    assert "tok-very-secret-123" not in repr(options)
    assert "tok-very-secret-123" not in str(options)


def test_a_missing_token_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="ARCHIVER_API_TOKEN is not set"):
        get_settings().require_token()


def test_every_setting_is_documented_in_config() -> None:
    documented = set(re.findall(r"^ARCHIVER_([A-Z_]+)=", EXAMPLE.read_text(), re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert documented == fields


def test_the_example_file_loads_as_shipped(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(EXAMPLE.read_text())
    settings = get_settings()
    # Empty values in the file mean "not set": the defaults apply.
    assert settings.now is None
    assert settings.schedule_interval_seconds is None
    assert settings.metrics_port is None
    assert settings.api_token is None
    assert settings == Settings(_env_file=None)


def test_every_invalid_setting_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_NOW", "yesterday")
    monkeypatch.setenv("ARCHIVER_CONCURRENCY", "0")
    monkeypatch.setenv("ARCHIVER_METRICS_PORT", "70000")
    with pytest.raises(ConfigError) as info:
        get_settings()
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert [line.split(":")[0] for line in lines] == [
        "invalid setting ARCHIVER_NOW",
        "invalid setting ARCHIVER_CONCURRENCY",
        "invalid setting ARCHIVER_METRICS_PORT",
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ARCHIVER_REQUEST_TIMEOUT_SECONDS": "inf"}, "ARCHIVER_REQUEST_TIMEOUT_SECONDS"),
        ({"ARCHIVER_REQUEST_TIMEOUT_SECONDS": "nan"}, "ARCHIVER_REQUEST_TIMEOUT_SECONDS"),
        ({"ARCHIVER_MAX_REQUESTS_PER_SECOND": "1e-9"}, "ARCHIVER_MAX_REQUESTS_PER_SECOND"),
        ({"ARCHIVER_MAX_BACKOFF_SECONDS": "inf"}, "ARCHIVER_MAX_BACKOFF_SECONDS"),
        ({"ARCHIVER_METRICS_PORT": "70000"}, "ARCHIVER_METRICS_PORT"),
        ({"ARCHIVER_METRICS_ADDRESS": "0.0.0.0 ; rm"}, "ARCHIVER_METRICS_ADDRESS"),
        ({"ARCHIVER_STANDBY_POLL_SECONDS": "0"}, "ARCHIVER_STANDBY_POLL_SECONDS"),
        ({"ARCHIVER_RETENTION_MARGIN_MINUTES": "10080"}, "ARCHIVER_RETENTION_MARGIN_MINUTES"),
        (
            {"ARCHIVER_STREAM_RETENTION_DAYS": "2", "ARCHIVER_RETENTION_MARGIN_MINUTES": "2880"},
            "ARCHIVER_RETENTION_MARGIN_MINUTES",
        ),
        ({"ARCHIVER_API_TOKEN": "abc"}, "ARCHIVER_API_TOKEN is too short"),
        ({"ARCHIVER_API_TOKEN": "secret-\r\nX-Evil: 1"}, "ARCHIVER_API_TOKEN"),
        ({"ARCHIVER_API_TOKEN": "sécret-token-123"}, "ARCHIVER_API_TOKEN"),
        ({"ARCHIVER_DAY_RETENTION_DAYS": "3"}, "ARCHIVER_STREAM_RETENTION_DAYS"),
    ],
)
def test_values_that_cannot_work_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        get_settings()
    message = str(info.value)
    assert expected in message
    for value in env.values():
        if "TOKEN" in expected:
            assert value not in message  # the secret is never echoed back


def test_a_short_token_is_fine_for_a_loopback_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_API_TOKEN", "sim")
    monkeypatch.setenv("ARCHIVER_API_BASE_URL", "http://127.0.0.1:8765")
    assert get_settings().require_token() == "sim"


def test_setup_logging_redacts_the_exact_token_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from archiver.observability import setup_logging

    monkeypatch.setenv("ARCHIVER_API_TOKEN", "tok-very-secret-123")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(get_settings())
        logging.getLogger("archiver.test").warning("vendor said: bad tok-very-secret-123 token")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "tok-very-secret-123" not in err
    assert "vendor said: bad [redacted] token" in err


def test_whitespace_only_values_mean_not_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARCHIVER_NOW", "   ")
    (tmp_path / ".env").write_text(
        'ARCHIVER_METRICS_PORT="  "\nARCHIVER_SCHEDULE_INTERVAL_SECONDS=\n'
    )
    settings = get_settings()
    assert settings.now is None
    assert settings.metrics_port is None


@pytest.mark.parametrize("address", ["-", "999.999.999.999", "a b", "host:80", ""])
def test_a_metrics_address_that_cannot_be_listened_on_is_refused(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    monkeypatch.setenv("ARCHIVER_METRICS_ADDRESS", address or "''")
    with pytest.raises(ConfigError, match="ARCHIVER_METRICS_ADDRESS"):
        get_settings()


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "0.0.0.0", "::1", "[::]", "localhost", "db-1.lan"]
)
def test_metrics_addresses(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("ARCHIVER_METRICS_ADDRESS", address)
    assert get_settings().metrics_address == address.strip("[]")


def test_a_short_loopback_token_does_not_mangle_log_lines() -> None:
    import logging

    from archiver.observability import SecretFilter

    record = logging.LogRecord(
        "x", logging.INFO, "x", 1, "started the test with t at the station", None, None
    )
    SecretFilter(["t"]).filter(record)
    assert record.getMessage() == "started the test with [redacted] at the station"
    long = logging.LogRecord("x", logging.INFO, "x", 1, "key=abcdefgh12;xabcdefgh12y", None, None)
    SecretFilter(["abcdefgh12"]).filter(long)
    assert long.getMessage() == "key=[redacted];x[redacted]y"


def test_the_client_options_are_the_settings_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_API_TOKEN", "tok-very-secret-123")
    settings = get_settings(
        api_base_url="http://127.0.0.1:9/",
        request_timeout_seconds=7,
        max_attempts=3,
        backoff_base_seconds=0.25,
        max_backoff_seconds=9,
        max_requests_per_second=33,
        concurrency=5,
        max_response_bytes=4096,
        request_deadline_seconds=11,
        now="2026-11-20T12:02:00Z",
    )
    assert settings.client_options() == ClientOptions(
        base_url="http://127.0.0.1:9",
        token="tok-very-secret-123",
        timeout=7,
        max_attempts=3,
        backoff_base_seconds=0.25,
        max_backoff_seconds=9,
        max_requests_per_second=33,
        concurrency=5,
        max_response_bytes=4096,
        deadline_seconds=11,
        now=datetime(2026, 11, 20, 12, 2, tzinfo=UTC),
    )
    client = AnalyticsClient.from_options(settings.client_options())
    try:
        assert client.retry == RetryPolicy(3, 0.25, 9)
        assert client.concurrency == 5
        assert client.base_url == "http://127.0.0.1:9"
    finally:
        client.close()


def test_the_client_needs_the_token() -> None:
    with pytest.raises(ConfigError, match="ARCHIVER_API_TOKEN is not set"):
        get_settings().client_options()
