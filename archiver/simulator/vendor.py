"""The simulator's own copy of the vendor's rules: endpoints, names, retention, tokens, webhooks.

The simulator is the vendor: it must not borrow these rules from the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from archiver.simulator.buckets import EPOCH, Resolution
from archiver.simulator.model import Session, SimConfig, Stream
from archiver.simulator.traffic import Traffic

ACCOUNT_ID = "simacct"
ANALYTICS = "/api/analytics/"
MONITORING = "/api/monitoring/streams"
PUBLISH_TOKENS = "/api/publish_token/list"
GRAPHQL = "/graphql"
MAX_NAMES_PER_REQUEST = 10
MAX_NAME_LENGTH = 128
_UNREPORTABLE = re.compile(r"[/*]|--")
# Regex publish tokens the simulated account publishes under (label, pattern).
REGEX_TOKENS = (
    ("studio", "stream-[0-9]+"),
    ("numbered", "[0-9]+"),
    ("promo", "promo--.*"),
)


@dataclass(frozen=True)
class Series:
    """One analytics endpoint: bandwidth or geo blocks, per stream or not, and resolutions."""

    kind: str  # "series", "geo" or "tracking"
    per_stream: bool
    resolutions: tuple[Resolution, ...]


SERIES = {
    "account/series": Series("series", False, (Resolution.HOUR, Resolution.DAY, Resolution.MONTH)),
    "account/geo_series": Series("geo", False, (Resolution.HOUR, Resolution.DAY)),
    "streams/series": Series("series", True, (Resolution.HOUR, Resolution.DAY)),
    "streams/geo_series": Series("geo", True, (Resolution.HOUR, Resolution.DAY)),
    "tracking/streams/series": Series("tracking", True, (Resolution.HOUR, Resolution.DAY)),
}


def retention(config: SimConfig, per_stream: bool, resolution: Resolution) -> timedelta | None:
    """How long the vendor keeps a bucket of this kind; None: for good."""
    if per_stream:
        return timedelta(days=config.stream_retention_days)
    if resolution is Resolution.HOUR:
        return timedelta(days=config.hour_retention_days)
    if resolution is Resolution.DAY:
        return timedelta(days=config.day_retention_days)
    return None


def refusal_reason(name: str) -> str | None:
    """Why the vendor reports nothing for `name` (it answers without it), or None."""
    if not name:
        return "empty"
    if len(name) > MAX_NAME_LENGTH:
        return "too long"
    if _UNREPORTABLE.search(name):
        return "contains '/', '*' or '--'"
    return None


def reportable(name: str) -> bool:
    """Whether the vendor reports analytics for `name`."""
    return refusal_reason(name) is None


def _token(token_id: int, label: str, streams: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": token_id,
        "label": label,
        "token": f"{token_id:08x}" * 8,
        "addedOn": "2024-12-02T23:51:39Z",
        "expiresOn": None,
        "isActive": True,
        "streams": streams,
        "allowedOrigins": [],
        "allowedIpAddresses": [],
        "bindIpsOnUsage": None,
        "allowedCountries": [],
        "deniedCountries": [],
        "originCluster": "auto",
        "subscribeRequiresAuth": False,
        "record": False,
        "multisource": False,
        "enableThumbnails": False,
    }


def publish_tokens(traffic: Traffic) -> list[dict[str, Any]]:
    """The account's publish tokens: exact-name tokens first, then the regex tokens."""
    config = traffic.config
    exact = exact_token_streams(traffic)
    size = max(config.names_per_exact_token, 1)
    tokens = []
    for k in range(0, len(exact), size):
        names = [{"streamName": s.name, "isRegex": False} for s in exact[k : k + size]]
        tokens.append(_token(61000 + k // size, f"exact-{k // size + 1}", names))
    for k, (label, pattern) in enumerate(REGEX_TOKENS):
        tokens.append(_token(62000 + k, label, [{"streamName": pattern, "isRegex": True}]))
    return tokens


def exact_token_streams(traffic: Traffic) -> list[Stream]:
    """The streams published under exact-name tokens: spread evenly over all streams, so
    that early and late, long- and short-lived streams are among them."""
    count = min(traffic.config.exact_token_streams, len(traffic.streams))
    total = len(traffic.streams)
    return [traffic.streams[k * total // count] for k in range(count)] if count else []


def exact_token_names(traffic: Traffic) -> list[str]:
    """Names the token list reveals by themselves."""
    return [s.name for s in exact_token_streams(traffic)]


def _ms(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds() * 1000)


def feed_event(event: str, stream: Stream, session: Session) -> bytes:
    """The JSON body the vendor POSTs when a feed starts or ends."""
    data: dict[str, Any] = {
        "feedId": f"{stream.index:08x}-0000-4000-8000-{session.start:012x}",
        "accountId": ACCOUNT_ID,
        "name": stream.name,
        "streamId": f"{ACCOUNT_ID}/{stream.name}",
        "started": _ms(session.started_at()),
        "active": event == "started",
    }
    if event == "ended":
        data["ended"] = _ms(session.ended_at())
    moment = session.started_at() if event == "started" else session.ended_at()
    body = {"type": "feeds", "event": event, "timestamp": _ms(moment), "data": data}
    return json.dumps(body, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """`X-Millicast-Signature`: HMAC-SHA1 of the raw body keyed with the decoded secret."""
    key = base64.b64decode(secret)
    return "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
