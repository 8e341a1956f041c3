"""What the API client is built from: plain values (the settings produce them, api/ never reads
the settings), the names a user fixes them under, and the one rule on plain-HTTP hosts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime

# The settings these options come from, named in the errors that tell a user what to check
# (`archiver.config` spells its settings with these same constants).
TOKEN_SETTING = "ARCHIVER_API_TOKEN"
BASE_URL_SETTING = "ARCHIVER_API_BASE_URL"


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses: the only hosts allowed over plain HTTP."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ClientOptions:
    """Everything `AnalyticsClient.from_options` needs; the token never shows in the repr."""

    base_url: str
    token: str = field(repr=False)
    timeout: float = 30.0
    max_attempts: int = 5
    backoff_base_seconds: float = 0.5
    max_backoff_seconds: float = 60.0
    max_requests_per_second: float = 20.0
    concurrency: int = 8
    max_response_bytes: int = 128 * 1024 * 1024
    deadline_seconds: float = 300.0
    # A frozen clock (ARCHIVER_NOW) for the client's own notion of "now"; None: the real one.
    now: datetime | None = None
