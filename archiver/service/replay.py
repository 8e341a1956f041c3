"""Applies spooled webhook events to the archive in arrival order; each deleted after its commit."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from archiver.cycle.streams import add_streams
from archiver.errors import ArchiverError
from archiver.observability import Metrics
from archiver.service.spool import Spool, SpoolDamaged, Spooled
from archiver.store.db import transaction
from archiver.vocabulary import StreamSource

log = logging.getLogger(__name__)

FEED_EVENTS = ("started", "ended")
# How often spooled events are tried again while the archive cannot be written.
RETRY_SECONDS = 10.0


def feed_stream_name(event: Any) -> str | None:
    """The stream name of a `feeds` started/ended event, or None for anything else."""
    if not isinstance(event, dict) or event.get("type") != "feeds":
        return None
    if event.get("event") not in FEED_EVENTS:
        return None
    data = event.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    return name


class SpoolApplier:
    """Empties the spool into `tracked_streams`, stopping at the first event the archive refuses
    (order kept) and trying again after `retry_seconds`, on the next event or the timer."""

    def __init__(
        self,
        *,
        engine: Engine,
        spool: Spool,
        metrics: Metrics | None = None,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.engine = engine
        self.spool = spool
        self.metrics = metrics
        self.retry_seconds = retry_seconds
        self._retry_at = 0.0
        self._failing = False

    def __repr__(self) -> str:
        return f"SpoolApplier({self.spool!r})"

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhooks.labels(outcome=outcome).inc()

    def _waiting(self) -> bool:
        return time.monotonic() < self._retry_at

    def apply(self, *, retry: bool = False) -> None:
        """Apply every pending event, oldest first. Within `retry_seconds` of a failure only a
        `retry` (the timer, the start) tries the archive: a request must not wait for it."""
        if not retry and self._waiting():
            return
        # While the archive is failing a request never queues behind an applier that may be
        # waiting on an unreachable server: its event is kept, the applier takes it.
        with self.spool.exclusive(wait=retry or not self._failing) as held:
            if not held or (not retry and self._waiting()):
                return  # the holder before us found the archive down
            applied = 0
            for path in self.spool.pending():
                outcome = self._apply_one(path)
                if outcome is None:
                    self._gauge()
                    return
                applied += outcome
            if self._failing:
                log.warning("webhook spool: the archive is back; %d kept event(s) applied", applied)
            self._failing = False
            self._retry_at = 0.0
            self._gauge()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.webhook_spool.set(len(self.spool.pending()))

    def _apply_one(self, path: Path) -> int | None:
        """1 if applied, 0 if gone or quarantined, None if the archive refused it (stop)."""
        try:
            spooled = self.spool.read(path)
            name = feed_stream_name(json.loads(spooled.body))
            if name is None:
                raise SpoolDamaged(f"{path.name}: not a feed event")
        except FileNotFoundError:
            return 0  # applied by another process sharing the folder
        except (OSError, ValueError, RecursionError, SpoolDamaged) as exc:
            # Never retried in a loop: set aside whole, for a person to read.
            target = self.spool.quarantine(path)
            self._count("quarantined")
            log.error("webhook spool: %s cannot be applied (%s); moved to %s", path, exc, target)
            return 0
        try:
            added = self._register(name, spooled)
        except ArchiverError as exc:
            self._retry_at = time.monotonic() + self.retry_seconds
            if not self._failing:
                log.error(
                    "webhook spool: the archive cannot be written (%s); events are kept in %s "
                    "and applied when it is back",
                    exc,
                    self.spool.root,
                )
            self._failing = True
            return None
        # Only now that the transaction committed: a crash before this line applies it again,
        # which changes nothing (registering a name is idempotent).
        self.spool.discard(path)
        self._count("registered")
        if added:
            log.info("tracking stream %r: a feed webhook said it %s", name, added)
        return 1

    def _register(self, name: str, spooled: Spooled) -> str | None:
        """Register `name` as seen when the event arrived; the event's word if it is new."""
        with transaction(self.engine) as conn:
            added = add_streams(
                conn=conn,
                names=[name],
                source=StreamSource.WEBHOOK,
                now=spooled.received_at,
                seen=True,
            )
        if not added.added:
            return None
        event = json.loads(spooled.body)
        return str(event.get("event"))


class SpoolTimer:
    """Applies the spool at start and every `retry_seconds` after, in a thread of its own."""

    def __init__(self, applier: SpoolApplier) -> None:
        self.applier = applier
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-spool", daemon=True)

    def start(self) -> SpoolTimer:
        """Start: the first round at once (a restart replays what the last process kept)."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.applier.spool.recount()
                self.applier.apply(retry=True)
            except Exception:  # the timer must outlive any one round
                log.exception("webhook spool: a round failed unexpectedly")
            if self._stop.wait(self.applier.retry_seconds):
                return

    def stop(self) -> None:
        """Stop after the round in flight."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
