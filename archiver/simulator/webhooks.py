"""The vendor's feed webhooks: signed events POSTed once as sessions start and end."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from archiver.simulator import vendor
from archiver.simulator.model import Session, Stream
from archiver.simulator.traffic import Traffic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookTarget:
    """Where the vendor POSTs signed feed events, and how many it loses (seeded)."""

    url: str
    secret: str  # base64, as the vendor's dashboard shows it
    loss_rate: float = 0.0
    seed: int = 0
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class WebhookDelivery:
    """One feed event: when it happened, to whom, and what became of it."""

    at: datetime
    event: str
    stream: str
    lost: bool
    status: int | None  # the receiver's answer; None when lost or unreachable


class WebhookSender:
    """Sends each session start and end once, up to the clock's time, and logs every event."""

    def __init__(
        self,
        traffic: Traffic,
        target: WebhookTarget | None,
        *,
        now: Callable[[], datetime],
        delivered: Callable[[str, datetime], None],
    ) -> None:
        self.traffic = traffic
        self.target = target
        self.log: list[WebhookDelivery] = []
        # Events after this instant are still to be sent.
        self.until = now()
        self._now = now
        self._delivered = delivered
        self._lock = threading.Lock()
        self._random = random.Random(target.seed if target else 0)

    def send(self) -> None:
        """POST the feed events of sessions that started or ended since the last call, once."""
        target = self.target
        if target is None:
            return
        with self._lock:
            until = self._now()
            if until <= self.until:
                return
            events = self.traffic.session_events(self.until, until)
            self.until = until
            for at, event, stream, session in events:
                lost = self._random.random() < target.loss_rate
                status = None if lost else _post_event(target, event, stream, session)
                self.log.append(WebhookDelivery(at, event, stream.name, lost, status))
                if status is not None and 200 <= status < 300:
                    # Revealed when delivered: a manual clock delivers a jump's events at
                    # its end, and only then can the receiver act on them.
                    self._delivered(stream.name, until)


def _post_event(target: WebhookTarget, event: str, stream: Stream, session: Session) -> int | None:
    body = vendor.feed_event(event, stream, session)
    headers = {
        "Content-Type": "application/json",
        "X-Millicast-Signature": vendor.signature(target.secret, body),
    }
    try:
        response = httpx.post(
            target.url, content=body, headers=headers, timeout=target.timeout_seconds
        )
    except httpx.HTTPError as exc:
        # The vendor sends each event once: an unreachable receiver loses it for good.
        log.debug("simulator: webhook to %s failed: %s", target.url, type(exc).__name__)
        return None
    return response.status_code
