"""Settings: validated once, from `ARCHIVER_*` environment variables and `.env`."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from archiver.errors import ConfigError
from archiver.timeutil import utc

DEFAULT_API_BASE_URL = "https://api.millicast.com"
TOKEN_SETTING = "ARCHIVER_API_TOKEN"


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses: the only hosts allowed over plain HTTP."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_names(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the archiver; `config/archiver.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="ARCHIVER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    api_token: SecretStr | None = None
    api_base_url: str = DEFAULT_API_BASE_URL
    database_url: str = "sqlite:///archiver.db"
    streams: Annotated[list[str], NoDecode] = Field(default_factory=list)
    now: datetime | None = None

    hour_retention_days: int = Field(default=7, ge=1)
    day_retention_days: int = Field(default=90, ge=1)
    stream_retention_days: int = Field(default=7, ge=1)
    retention_margin_minutes: int = Field(default=60, ge=0)
    month_history_months: int = Field(default=24, ge=0)
    settle_minutes: int = Field(default=60, ge=0)
    max_buckets_per_request: int = Field(default=744, ge=1)

    concurrency: int = Field(default=8, ge=1, le=64)
    max_requests_per_second: float = Field(default=20.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_base_seconds: float = Field(default=0.5, ge=0)
    max_backoff_seconds: float = Field(default=60.0, ge=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)

    discovery: bool = True
    discovery_pattern: str | None = None
    dormant_check_hours: int = Field(default=24, ge=1)

    schedule_minutes: str = "2,17,32,47"
    schedule_interval_seconds: int | None = Field(default=None, ge=1)
    misfire_grace_seconds: int = Field(default=300, ge=1)
    standby_poll_seconds: float = Field(default=15.0, gt=0)
    health_max_age_minutes: int = Field(default=45, ge=1)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

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
        return None if value is None else utc(value)

    @field_validator("api_token")
    @classmethod
    def _blank_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("api_base_url")
    @classmethod
    def _https_or_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api.millicast.com")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("must use https (plain http is allowed only to loopback addresses)")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres") or "://" not in value:
            raise ValueError(
                "must be a SQLAlchemy URL such as sqlite:///archiver.db or "
                "postgresql+psycopg://user@host/dbname"
            )
        if value.startswith(("postgres://", "postgresql://")):
            # psycopg 3 is the driver we ship; bare postgresql:// would ask for psycopg2.
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("schedule_minutes")
    @classmethod
    def _minutes(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts or not all(p.isdigit() and 0 <= int(p) <= 59 for p in parts):
            raise ValueError("must be comma-separated minutes 0-59, such as 2,17,32,47")
        return ",".join(str(int(p)) for p in parts)

    @model_validator(mode="after")
    def _windows_make_sense(self) -> Settings:
        if self.stream_retention_days > self.day_retention_days:
            raise ValueError("stream_retention_days cannot exceed day_retention_days")
        return self

    def require_token(self) -> str:
        """The API secret, or a ConfigError naming the setting to fix."""
        if self.api_token is None:
            raise ConfigError(
                f"{TOKEN_SETTING} is not set: put your API secret (dashboard, Settings, "
                "Security, API Secrets) in the environment or in .env"
            )
        return self.api_token.get_secret_value()


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    name = f"ARCHIVER_{location[0].upper()}" if location else "settings"
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"invalid setting {name}: {message}{more}"


def get_settings(**overrides: object) -> Settings:
    """Build and validate the settings; any problem becomes one ConfigError line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
