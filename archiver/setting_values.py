"""Each single setting's value check: plain functions raising ValueError with the user's line."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from archiver.api.options import is_loopback_host


def api_base_url(value: str) -> str:
    """The vendor's base URL: https, or plain http to a loopback address only."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://api.millicast.com")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("must use https (plain http is allowed only to loopback addresses)")
    return value.rstrip("/")


def database_url(value: str) -> str:
    """A SQLAlchemy URL of SQLite or PostgreSQL; bare postgresql:// gets the psycopg driver."""
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


def schedule_minutes(value: str) -> str:
    """Comma-separated minutes of the hour, 0-59, normalised."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and 0 <= int(p) <= 59 for p in parts):
        raise ValueError("must be comma-separated minutes 0-59, such as 2,17,32,47")
    return ",".join(str(int(p)) for p in parts)


def listen_address(value: str) -> str:
    """An IP address or host name to listen on."""
    value = value.strip().strip("[]")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        # A host name: labels of letters, digits and inner hyphens, not all digits.
        label = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
        if not re.fullmatch(rf"{label}(\.{label})*", value) or value.replace(".", "").isdigit():
            raise ValueError(
                "must be an address to listen on, such as 127.0.0.1 or 0.0.0.0"
            ) from None
    return value
