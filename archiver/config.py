"""Settings: validated once, from `ARCHIVER_*` environment variables and `.env`."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from archiver import setting_values
from archiver.api.options import TOKEN_SETTING, ClientOptions, is_loopback_host
from archiver.errors import ConfigError
from archiver.setting_names import check as check_names
from archiver.setting_names import describe_errors
from archiver.timeutil import EARLIEST, LATEST, utc

DEFAULT_API_BASE_URL = "https://api.millicast.com"
# Shorter secrets are typos; redacting a 1-letter token would also mangle every log line.
MIN_TOKEN_LENGTH = 8


def _split_names(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]
    return value


def _no_streams() -> list[str]:
    # Not `default_factory=list`: pydantic reads a builtin's signature by tokenizing its text
    # signature, and every command that reads the settings paid for tokenize's regex (~2 ms).
    return []


class Settings(BaseSettings):
    """Every setting of the archiver; `config/archiver.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="ARCHIVER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # `ARCHIVER_NOW=` in .env means "not set", as the example file's comments say.
        env_ignore_empty=True,
    )

    api_token: SecretStr | None = None
    api_base_url: str = DEFAULT_API_BASE_URL
    database_url: str = "sqlite:///archiver.db"
    streams: Annotated[list[str], NoDecode] = Field(default_factory=_no_streams)
    now: datetime | None = None

    # Upper bounds keep every date computed from these inside the calendar.
    hour_retention_days: int = Field(default=7, ge=1, le=3660)
    day_retention_days: int = Field(default=365, ge=1, le=3660)
    stream_retention_days: int = Field(default=7, ge=1, le=3660)
    retention_margin_minutes: int = Field(default=60, ge=0)
    month_history_months: int = Field(default=24, ge=0, le=1200)
    settle_minutes: int = Field(default=60, ge=0, le=10_080)
    max_buckets_per_request: int = Field(default=744, ge=1, le=100_000)

    concurrency: int = Field(default=8, ge=1, le=64)
    # Bounded on both sides: a rate of 1e-9 would wait for years, inf would disable the cap.
    max_requests_per_second: float = Field(default=20.0, ge=0.01, le=10_000, allow_inf_nan=False)
    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_base_seconds: float = Field(default=0.5, ge=0, le=3600, allow_inf_nan=False)
    max_backoff_seconds: float = Field(default=60.0, ge=0, le=3600, allow_inf_nan=False)
    request_timeout_seconds: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)

    discovery: bool = True
    discovery_pattern: str | None = None
    dormant_check_hours: int = Field(default=24, ge=1, le=8760)
    # New names one source (webhook, discovered, token, cli...) may start in one cycle.
    max_new_streams_per_cycle: int = Field(default=500, ge=1, le=1_000_000)

    schedule_minutes: str = "2,17,32,47"
    schedule_interval_seconds: int | None = Field(default=None, ge=1, le=86_400)
    misfire_grace_seconds: int = Field(default=300, ge=1, le=86_400)
    standby_poll_seconds: float = Field(default=15.0, ge=0.05, le=3600, allow_inf_nan=False)
    health_max_age_minutes: int = Field(default=45, ge=1, le=525_600)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_address: str = "127.0.0.1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: object) -> object:
        # `ARCHIVER_NOW=` is already dropped (env_ignore_empty); `ARCHIVER_NOW="  "` too.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    # --- Stream sources: publish tokens, feed webhooks, unexplained usage -----------------
    publish_tokens: bool = True
    # The vendor's GraphQL feed history: names of the last 30 days, sessions archived.
    feeds: bool = True
    # The vendor's GraphQL viewer statistics (5-minute periods), and how far a first read of
    # each reaches back (the vendor never purges them: a first read must be bounded).
    viewers: bool = True
    stream_viewer_days: int = Field(default=7, ge=1, le=3660)
    account_viewer_days: int = Field(default=365, ge=1, le=3660)
    webhook_port: int | None = Field(default=None, ge=1, le=65535)
    webhook_address: str = "127.0.0.1"
    webhook_secret: SecretStr | None = None
    webhook_max_body_bytes: int = Field(default=65536, ge=1024)
    # Where accepted events wait while the archive cannot be written; None: beside the archive.
    webhook_spool_dir: Path | None = None
    webhook_spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    unattributed_warn_percent: float = Field(default=5.0, ge=0, le=100)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret_is_base64(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        text = value.get_secret_value().strip()
        try:
            if not base64.b64decode(text, validate=True):
                raise ValueError
        except ValueError:
            # The value itself is never echoed: it is a secret.
            raise ValueError("must be the base64 webhook secret the vendor shows") from None
        return SecretStr(text)

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_port is not None and self.webhook_secret is None:
            raise ValueError(
                "ARCHIVER_WEBHOOK_PORT needs ARCHIVER_WEBHOOK_SECRET (the vendor's webhook "
                "secret, base64): unsigned events are never accepted"
            )
        return self

    # --- Bounded requests (issue 14): a hostile or broken vendor cannot hold a cycle.
    max_response_bytes: int = Field(default=128 * 1024 * 1024, ge=1024, le=4 * 1024**3)
    request_deadline_seconds: float = Field(default=300.0, gt=0, le=86400)

    @field_validator("streams", mode="before")
    @classmethod
    def _split_streams(cls, value: object) -> object:
        return _split_names(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("now")
    @classmethod
    def _now_is_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        if not EARLIEST <= value < LATEST:
            raise ValueError(f"must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}")
        return value

    @field_validator("api_token")
    @classmethod
    def _blank_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        token = value.get_secret_value().strip()
        # It travels in an HTTP header: CR/LF or non-ASCII would break (or smuggle) headers.
        if not all(0x21 <= ord(char) <= 0x7E for char in token):
            raise ValueError("must be printable ASCII without spaces (paste the secret again)")
        return SecretStr(token)

    @field_validator("api_base_url")
    @classmethod
    def _https_or_loopback(cls, value: str) -> str:
        return setting_values.api_base_url(value)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        return setting_values.database_url(value)

    @field_validator("schedule_minutes")
    @classmethod
    def _minutes(cls, value: str) -> str:
        return setting_values.schedule_minutes(value)

    @field_validator("metrics_address")
    @classmethod
    def _address(cls, value: str) -> str:
        return setting_values.listen_address(value)

    @model_validator(mode="after")
    def _settings_agree(self) -> Settings:
        problems: list[str] = []
        if self.stream_retention_days > self.day_retention_days:
            problems.append(
                "ARCHIVER_STREAM_RETENTION_DAYS cannot exceed ARCHIVER_DAY_RETENTION_DAYS"
            )
        shortest = min(self.hour_retention_days, self.stream_retention_days) * 24 * 60
        if self.retention_margin_minutes >= shortest:
            # A margin as long as the window would count every bucket the vendor holds at risk.
            problems.append(
                f"ARCHIVER_RETENTION_MARGIN_MINUTES must be below the shortest retention "
                f"window ({shortest} minutes)"
            )
        if self.max_backoff_seconds < self.backoff_base_seconds:
            problems.append(
                "ARCHIVER_MAX_BACKOFF_SECONDS cannot be below ARCHIVER_BACKOFF_BASE_SECONDS"
            )
        token = self.api_token.get_secret_value() if self.api_token else ""
        host = urlsplit(self.api_base_url).hostname or ""
        if token and len(token) < MIN_TOKEN_LENGTH and not is_loopback_host(host):
            problems.append(
                f"{TOKEN_SETTING} is too short to be an API secret "
                f"(at least {MIN_TOKEN_LENGTH} characters)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    _warnings: tuple[str, ...] = PrivateAttr(default=())  # set by get_settings

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per unknown `ARCHIVER_*` environment variable, naming the closest setting."""
        return self._warnings

    def client_options(self) -> ClientOptions:
        """What the API client is built from (the token is required)."""
        return ClientOptions(
            base_url=self.api_base_url,
            token=self.require_token(),
            timeout=self.request_timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_base_seconds=self.backoff_base_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
            max_requests_per_second=self.max_requests_per_second,
            concurrency=self.concurrency,
            max_response_bytes=self.max_response_bytes,
            deadline_seconds=self.request_deadline_seconds,
            now=self.now,
        )

    def require_token(self) -> str:
        """The API secret, or a ConfigError naming the setting to fix."""
        if self.api_token is None:
            raise ConfigError(
                f"{TOKEN_SETTING} is not set: put your API secret (dashboard, Settings, "
                "Security, API Secrets) in the environment or in .env"
            )
        return self.api_token.get_secret_value()


def get_settings(**overrides: object) -> Settings:
    """Build and validate the settings: a ConfigError line per problem (unknown .env names too)."""
    env_file = Path(str(Settings.model_config.get("env_file") or ".env"))
    problems, warnings = check_names(Settings.model_fields, os.environ, env_file)
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems.append(describe_errors(exc))
    if problems:
        # A misspelt name in .env would silently fall back to a default (a new ./archiver.db).
        raise ConfigError("\n".join(problems))
    settings._warnings = tuple(warnings)
    return settings
