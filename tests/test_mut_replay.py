"""Replaying the webhook spool, pinned where mutation testing found it loose (issue 21 item 8):
which events are feed events, the retry window (an injected clock), who waits for the applier
lock, the operator's log lines and gauge, and the timer's rounds and stop."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.observability import Metrics
from archiver.service.replay import SpoolApplier, SpoolTimer, feed_stream_name
from archiver.service.spool import BLOCK, LOCK_FILE, Spool
from archiver.store.tables import tracked_streams
from tests.test_mut_spool import flock_waiters, in_thread, joined, until

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REPLAY = "archiver.service.replay"


def feed(name: str, event: str = "started") -> bytes:
    return json.dumps({"type": "feeds", "event": event, "data": {"name": name}}).encode()


# --- which events name a stream --------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        None,
        ["feeds"],
        "feeds",
        {"type": "recording", "event": "started", "data": {"name": "cam"}},
        {"event": "started", "data": {"name": "cam"}},
        {"type": "feeds", "event": "updated", "data": {"name": "cam"}},
        {"type": "feeds", "event": "started", "data": ["cam"]},
        {"type": "feeds", "event": "started", "data": {"name": 7}},
        {"type": "feeds", "event": "started", "data": {"name": "  "}},
        {"type": "feeds", "event": "started", "data": {}},
    ],
)
def test_only_a_feed_start_or_end_with_a_name_names_a_stream(event: Any) -> None:
    assert feed_stream_name(event) is None


@pytest.mark.parametrize("word", ["started", "ended"])
def test_a_feed_start_or_end_names_its_stream(word: str) -> None:
    assert feed_stream_name(json.loads(feed(" cam ", word))) == " cam "


# --- an archive that can be taken down --------------------------------------------------------


@dataclass
class Archive:
    """A SQLite archive whose every statement fails while `down` (as a server gone would);
    `asked` counts the statements refused so; `gate`, when given, holds the first refusal."""

    engine: Engine
    down: bool = False
    asked: int = 0
    entered: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event | None = None

    def refuse(self, conn: object, cursor: object, statement: str, *_: object) -> None:
        if not self.down:
            return
        self.asked += 1
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        raise sa.exc.OperationalError(statement, {}, Exception("the server is gone"))

    def tracked(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(tracked_streams.c.stream_name)).scalars())


@pytest.fixture
def archive(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Archive]:
    path = tmp_path / "archive.db"
    shutil.copyfile(migrated_sqlite, path)
    engine = sa.create_engine(f"sqlite:///{path}")
    archive = Archive(engine)
    sa.event.listen(engine, "before_cursor_execute", archive.refuse)
    yield archive
    engine.dispose()


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool", max_bytes=2**20)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The applier's monotonic clock, set by the test."""
    now = [100.0]
    monkeypatch.setattr(f"{REPLAY}.time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def gauge(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("archiver_webhook_spool_events")


# --- the retry window ------------------------------------------------------------------------


def test_within_the_retry_window_only_a_retry_asks_the_archive(
    archive: Archive, spool: Spool, clock: list[float]
) -> None:
    applier = SpoolApplier(engine=archive.engine, spool=spool, retry_seconds=10)
    spool.keep(feed("cam"), NOW)
    archive.down = True
    applier.apply()
    assert archive.asked == 1
    archive.down = False
    clock[0] = 109.5  # a request within the window: its event is kept, the archive not asked
    spool.keep(feed("other"), NOW)
    applier.apply()
    assert len(spool.pending()) == 2
    clock[0] = 110.0  # the window over, to the tick: a request applies what is kept
    applier.apply()
    assert spool.pending() == []
    assert archive.tracked() == {"cam", "other"}


def test_the_timer_retries_within_the_window(
    archive: Archive, spool: Spool, clock: list[float]
) -> None:
    applier = SpoolApplier(engine=archive.engine, spool=spool, retry_seconds=3600)
    spool.keep(feed("cam"), NOW)
    archive.down = True
    applier.apply()
    archive.down = False
    clock[0] = 101.0
    SpoolTimer(applier).start().stop()  # one round: the first, at once
    assert spool.pending() == []
    assert archive.tracked() == {"cam"}


# --- what the operator sees ------------------------------------------------------------------


def test_an_outage_is_logged_once_when_it_begins_and_once_when_it_ends(
    archive: Archive, spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REPLAY)
    applier = SpoolApplier(engine=archive.engine, spool=spool)

    def lines() -> list[tuple[int, str]]:
        found = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == REPLAY]
        caplog.clear()
        return found

    spool.keep(feed("cam"), NOW)
    applier.apply(retry=True)
    assert lines() == [(logging.INFO, "tracking stream 'cam': a feed webhook said it started")]
    spool.keep(feed("cam", "ended"), NOW)
    applier.apply(retry=True)
    assert lines() == []  # known already: nothing new to say

    archive.down = True
    spool.keep(feed("down"), NOW)
    applier.apply(retry=True)
    [(level, message)] = lines()
    assert level == logging.ERROR
    assert message.startswith("webhook spool: the archive cannot be written (database error: ")
    assert message.endswith(f"); events are kept in {spool.root} and applied when it is back")
    applier.apply(retry=True)
    assert lines() == []  # still down: said once

    archive.down = False
    applier.apply(retry=True)
    assert lines() == [
        (logging.INFO, "tracking stream 'down': a feed webhook said it started"),
        (logging.WARNING, "webhook spool: the archive is back; 1 kept event(s) applied"),
    ]
    spool.keep(feed("later"), NOW)
    applier.apply(retry=True)
    assert lines() == [(logging.INFO, "tracking stream 'later': a feed webhook said it started")]

    archive.down = True  # a second outage is told as the first was
    spool.keep(feed("again"), NOW)
    applier.apply(retry=True)
    assert [level for level, _ in lines()] == [logging.ERROR]


def test_the_gauge_counts_what_is_kept_and_no_metrics_is_fine(
    archive: Archive, spool: Spool
) -> None:
    metrics = Metrics()
    applier = SpoolApplier(engine=archive.engine, spool=spool, metrics=metrics)
    archive.down = True
    spool.keep(feed("a"), NOW)
    spool.keep(feed("b"), NOW)
    applier.apply(retry=True)
    assert gauge(metrics) == 2
    archive.down = False
    applier.apply(retry=True)
    assert gauge(metrics) == 0
    assert (
        metrics.registry.get_sample_value("archiver_webhooks_total", {"outcome": "registered"}) == 2
    )

    bare = SpoolApplier(engine=archive.engine, spool=spool)
    archive.down = True
    spool.keep(feed("c"), NOW)
    spool.keep(b"not json", NOW)
    bare.apply(retry=True)
    archive.down = False
    bare.apply(retry=True)
    assert archive.tracked() == {"a", "b", "c"}
    assert len(list(spool.quarantine_dir.iterdir())) == 1


# --- who waits for the applier lock ----------------------------------------------------------


def test_a_request_waits_for_the_applier_while_the_archive_is_fine(
    archive: Archive, spool: Spool
) -> None:
    applier = SpoolApplier(engine=archive.engine, spool=spool)
    spool.keep(feed("cam"), NOW)
    with spool.exclusive():  # another applier (the timer, another process) at work
        thread, results = in_thread(applier.apply)
        until(
            lambda: bool(results) or flock_waiters(spool.root / LOCK_FILE) == 1,
            "the request to queue or give up",
        )
        assert results == []
    joined(thread)
    assert spool.pending() == []


def test_while_the_archive_fails_a_request_never_queues_behind_the_applier(
    archive: Archive, spool: Spool, clock: list[float]
) -> None:
    applier = SpoolApplier(engine=archive.engine, spool=spool, retry_seconds=10)
    spool.keep(feed("cam"), NOW)
    archive.down = True
    applier.apply()
    archive.down = False
    clock[0] = 200.0  # the window over, but still failing as far as it knows
    with spool.exclusive():  # the applier that may be waiting on an unreachable server
        thread, results = in_thread(applier.apply)
        until(
            lambda: bool(results) or flock_waiters(spool.root / LOCK_FILE) == 1,
            "the request to queue or give up",
        )
        assert flock_waiters(spool.root / LOCK_FILE) == 0
        joined(thread)
        assert len(spool.pending()) == 1  # kept for the holder: nothing applied without the lock
    assert archive.tracked() == set()


def test_a_request_behind_an_applier_that_found_the_archive_down_does_not_ask_again(
    archive: Archive, spool: Spool
) -> None:
    applier = SpoolApplier(engine=archive.engine, spool=spool, retry_seconds=3600)
    spool.keep(feed("cam"), NOW)
    archive.down = True
    archive.gate = threading.Event()
    timer_round, _ = in_thread(lambda: applier.apply(retry=True))
    assert archive.entered.wait(30)  # the round holds the lock, asking the archive
    request, _ = in_thread(applier.apply)
    until(lambda: flock_waiters(spool.root / LOCK_FILE) == 1, "the request to queue")
    archive.gate.set()  # the archive refuses the round
    joined(timer_round)
    joined(request)
    assert archive.asked == 1
    assert len(spool.pending()) == 1


# --- the timer -------------------------------------------------------------------------------


def test_the_timer_recounts_the_folder_another_process_shares(
    archive: Archive, spool: Spool
) -> None:
    archive.down = True
    applier = SpoolApplier(engine=archive.engine, spool=spool)
    Spool(spool.root, max_bytes=2**20).keep(feed("cam"), NOW)  # another process's
    assert spool.used_bytes == 0
    SpoolTimer(applier).start().stop()
    assert spool.used_bytes == BLOCK


def test_the_timer_outlives_a_failed_round_and_says_so(
    archive: Archive, spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    applier = SpoolApplier(engine=archive.engine, spool=spool, retry_seconds=0.001)
    shutil.rmtree(spool.root)  # every round fails measuring it

    def failures() -> int:
        return sum(
            r.getMessage() == "webhook spool: a round failed unexpectedly"
            for r in caplog.records
            # The traceback: `exc_info`, or `exc_text` once the service's SecretFilter (left on
            # a handler by an earlier in-process command) has rendered and scrubbed it.
            if r.name == REPLAY and r.levelno == logging.ERROR and (r.exc_info or r.exc_text)
        )

    timer = SpoolTimer(applier).start()
    try:
        until(lambda: failures() >= 2, "a second round after a failed one")
    finally:
        timer.stop()


def _timer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "webhook-spool"]


def _in_join(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == "join":
            return True
        frame = frame.f_back
    return False


def test_stop_returns_after_the_round_in_flight_and_the_thread_is_a_daemon(
    archive: Archive, spool: Spool
) -> None:
    applier = SpoolApplier(engine=archive.engine, spool=spool, retry_seconds=3600)
    spool.keep(feed("cam"), NOW)
    archive.down = True
    archive.gate = threading.Event()
    before = set(_timer_threads())
    timer = SpoolTimer(applier).start()
    try:
        [thread] = set(_timer_threads()) - before
        assert thread.daemon  # never keeps the process alive at exit
        assert archive.entered.wait(30)  # a round in flight

        def stop() -> bool:
            timer.stop()
            return thread.is_alive()

        stopper, results = in_thread(stop)
        until(lambda: bool(results) or _in_join(stopper), "stop() to wait or return")
        assert results == []  # it waits for the round
        archive.gate.set()
        joined(stopper)
        assert results == [False]
    finally:  # a failure above leaves no thread behind to hold the process
        archive.gate.set()
        timer.stop()
