"""Feed webhooks: signed feed events register their stream; anything else registers nothing."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.observability import Metrics
from archiver.service.spool import Spool
from archiver.service.webhooks import WebhookReceiver, WebhookServer, sign
from archiver.store.tables import tracked_streams

SECRET = base64.b64encode(b"the vendor's webhook secret").decode()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"


def spool_in(folder: Path, max_bytes: int = 2**24) -> Spool:
    return Spool(folder / "spool", max_bytes=max_bytes)


def feed_event(name: str, event: str = "started") -> bytes:
    body = {
        "type": "feeds",
        "event": event,
        "timestamp": 1638463486489,
        "data": {
            "feedId": "369e4a86-f937-4254-bd9f-99dc484d2bd6",
            "accountId": "ZG6NWV",
            "name": name,
            "streamId": f"ZG6NWV/{name}",
            "started": 1638463486359,
            "active": event == "started",
        },
    }
    return json.dumps(body).encode()


def signed(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Millicast-Signature": sign(base64.b64decode(SECRET), body),
    }


@pytest.fixture
def hooks(engine: Engine, tmp_path: Path) -> Iterator[tuple[WebhookServer, Metrics, httpx.Client]]:
    metrics = Metrics()
    receiver = WebhookReceiver(
        engine=engine,
        spool=spool_in(tmp_path),
        secret=SECRET,
        now=lambda: NOW,
        max_body_bytes=4096,
        metrics=metrics,
    )
    server = WebhookServer(receiver, address="127.0.0.1", port=0).start()
    with httpx.Client(timeout=10) as http:
        yield server, metrics, http
    server.stop()


def tracked(engine: Engine) -> dict[str, tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tracked_streams))
        return {r.stream_name: (r.source, r.status) for r in rows}


def outcome(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value("archiver_webhooks_total", {"outcome": name})
    return value or 0.0


def test_a_signed_feed_event_registers_its_stream(
    engine: Engine, hooks: tuple[WebhookServer, Metrics, httpx.Client]
) -> None:
    server, metrics, http = hooks
    started = feed_event("sample_stream")
    assert http.post(server.url, content=started, headers=signed(started)).status_code == 200
    ended = feed_event("other_stream", "ended")
    assert http.post(server.url, content=ended, headers=signed(ended)).status_code == 200
    assert tracked(engine) == {
        "sample_stream": ("webhook", "active"),
        "other_stream": ("webhook", "active"),
    }
    with engine.connect() as conn:
        seen = conn.execute(sa.select(tracked_streams.c.last_seen_at)).scalars().all()
    assert set(seen) == {NOW}
    assert outcome(metrics, "registered") == 2


def test_bad_signatures_bodies_and_other_hooks_register_nothing(
    engine: Engine,
    hooks: tuple[WebhookServer, Metrics, httpx.Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server, metrics, http = hooks
    body = feed_event("intruder")
    wrong = {**signed(body), "X-Millicast-Signature": sign(b"another key", body)}
    assert http.post(server.url, content=body, headers=wrong).status_code == 400
    missing = {"Content-Type": "application/json"}
    assert http.post(server.url, content=body, headers=missing).status_code == 400
    tampered = body.replace(b"intruder", b"intrudes")
    assert http.post(server.url, content=tampered, headers=signed(body)).status_code == 400
    assert outcome(metrics, "bad_signature") == 3

    huge = feed_event("x" * 5000)
    assert http.post(server.url, content=huge, headers=signed(huge)).status_code == 413
    assert outcome(metrics, "too_large") == 1

    not_json = b"<html>not json</html>"
    assert http.post(server.url, content=not_json, headers=signed(not_json)).status_code == 400
    assert outcome(metrics, "bad_body") == 1

    thumbnail = {
        "Content-Type": "image/jpeg",
        "X-Millicast-Stream-Id": "ZG6NWV/thumbed",
        "X-Millicast-Signature": sign(base64.b64decode(SECRET), JPEG),
    }
    assert http.post(server.url, content=JPEG, headers=thumbnail).status_code == 200
    recording = json.dumps({"type": "recording", "event": "started", "data": {"name": "r"}})
    recording_body = recording.encode()
    answer = http.post(server.url, content=recording_body, headers=signed(recording_body))
    assert answer.status_code == 200
    assert outcome(metrics, "ignored") == 2

    assert http.get(server.url).status_code == 405
    assert http.post(server.url.replace("/webhooks", "/other"), content=b"").status_code == 404
    assert tracked(engine) == {}
    # Refusals are logged without the body they refused.
    assert "intruder" not in caplog.text
    assert "not json" not in caplog.text


def test_the_secret_stays_out_of_the_receiver_repr(engine: Engine, tmp_path: Path) -> None:
    receiver = WebhookReceiver(
        engine=engine, spool=spool_in(tmp_path), secret=SECRET, now=lambda: NOW
    )
    assert SECRET not in repr(receiver)
    assert "secret" not in repr(receiver)
