"""Webhooks survive a database outage: accepted events are kept on disk and applied after."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.observability import Metrics
from archiver.service import spool as spool_module
from archiver.service.spool import Spool, default_spool_dir
from archiver.service.webhooks import WebhookReceiver, WebhookServer
from archiver.simulator import SimConfig, Simulator
from archiver.store import db
from archiver.store.tables import tracked_streams
from tests.pgcluster import private_cluster
from tests.processes import Process, free_port, wait_for
from tests.simhelpers import TOKEN
from tests.test_webhooks import NOW, SECRET, feed_event, outcome, signed, tracked


def _receiver(
    engine: Engine, spool: Spool, clock: list[datetime], retry_seconds: float = 0.0
) -> tuple[WebhookReceiver, Metrics]:
    metrics = Metrics()
    receiver = WebhookReceiver(
        engine=engine,
        spool=spool,
        secret=SECRET,
        now=lambda: clock[0],
        metrics=metrics,
        retry_seconds=retry_seconds,
    )
    return receiver, metrics


def _post(receiver: WebhookReceiver, body: bytes) -> int:
    headers = {k.lower(): v for k, v in signed(body).items()}
    return receiver.receive(body, headers)[0]


def _seen(engine: Engine) -> dict[str, tuple[datetime, datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tracked_streams))
        return {r.stream_name: (r.added_at, r.last_seen_at) for r in rows}


def test_events_while_the_sqlite_archive_is_locked_are_kept_and_applied_in_order(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    path = tmp_path / "archive.db"
    shutil.copyfile(migrated_sqlite, path)
    # A short busy timeout: the archive is "down" for as long as another writer holds it.
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    clock: list[datetime] = [NOW]
    receiver, metrics = _receiver(engine, spool, clock)
    assert _post(receiver, feed_event("before")) == 200
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for minute, (name, word) in enumerate(
            [("during", "started"), ("other", "started"), ("during", "ended")], start=1
        ):
            clock[0] = NOW + timedelta(minutes=minute)
            assert _post(receiver, feed_event(name, word)) == 202
        assert len(spool.pending()) == 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert set(tracked(engine)) == {"before"}
    clock[0] = NOW + timedelta(minutes=10)
    # The next event applies the kept ones first, oldest first, each at its arrival time.
    assert _post(receiver, feed_event("after")) == 200
    assert spool.pending() == []
    seen = _seen(engine)
    assert seen["during"] == (NOW + timedelta(minutes=1), NOW + timedelta(minutes=3))
    assert seen["other"] == (NOW + timedelta(minutes=2),) * 2
    assert seen["after"] == (NOW + timedelta(minutes=10),) * 2
    assert outcome(metrics, "spooled") == 3
    assert outcome(metrics, "registered") == 5
    engine.dispose()


@pytest.mark.postgres
def test_events_during_a_postgresql_outage_are_answered_2xx_and_applied_after(
    tmp_path: Path,
) -> None:
    with private_cluster() as cluster:
        engine = db.make_engine(cluster.url())
        db.upgrade(engine)
        spool = Spool(tmp_path / "spool", max_bytes=2**20)
        receiver, metrics = _receiver(engine, spool, [NOW], retry_seconds=0.2)
        server = WebhookServer(receiver, address="127.0.0.1", port=0).start()
        try:
            with httpx.Client(timeout=30) as http:

                def post(name: str) -> int:
                    body = feed_event(name)
                    return http.post(server.url, content=body, headers=signed(body)).status_code

                assert post("up_before") == 200
                cluster.stop()
                try:
                    answers = [post(f"down_{n}") for n in range(5)]
                    assert answers == [202] * 5
                    assert len(spool.pending()) == 5
                finally:
                    cluster.start()
                # No new event: the timer applies what was kept once the archive is back.
                wait_for(lambda: not spool.pending(), what="the spool applied")
        finally:
            server.stop()
        assert set(tracked(engine)) == {"up_before", *(f"down_{n}" for n in range(5))}
        assert outcome(metrics, "registered") == 6
        engine.dispose()


def test_a_full_spool_answers_503_and_keeps_what_it_holds(tmp_path: Path) -> None:
    # No archive at all: every kept event stays in the spool.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'archive.db'}")
    spool = Spool(tmp_path / "spool", max_bytes=2 * spool_module.BLOCK)
    receiver, metrics = _receiver(engine, spool, [NOW])
    assert [_post(receiver, feed_event(f"s{n}")) for n in range(3)] == [202, 202, 503]
    assert len(spool.pending()) == 2
    assert outcome(metrics, "spool_full") == 1
    assert spool.used_bytes <= spool.max_bytes


def test_a_damaged_spooled_file_is_quarantined_once_and_blocks_nothing(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    (spool.root / f"{1:020d}-1-00000001.event").write_bytes(b"half a wri")
    (spool.root / f"{2:020d}-1-00000001.event").write_bytes(
        spool_module.MAGIC + NOW.isoformat().encode() + b"\n{not json"
    )
    spool.keep(feed_event("behind_them"), NOW)
    receiver, metrics = _receiver(engine, spool, [NOW])
    receiver.applier.apply()
    receiver.applier.apply()  # nothing left to try: no loop over a bad file
    assert set(tracked(engine)) == {"behind_them"}
    assert spool.pending() == []
    assert sorted(p.name[:20] for p in spool.quarantine_dir.iterdir()) == [
        f"{1:020d}",
        f"{2:020d}",
    ]
    assert outcome(metrics, "quarantined") == 2
    assert "moved to" in caplog.text


def test_an_event_is_fsynced_file_and_folder_before_it_is_answered(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        real_fsync(fd)
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        steps.append("fsync folder" if target.is_dir() else "fsync file")

    def rename(src: Path, dst: Path) -> None:
        real_rename(src, dst)
        steps.append("rename")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    receiver, _ = _receiver(engine, spool, [NOW])
    real_apply = receiver.applier.apply

    def apply(*, retry: bool = False) -> None:
        steps.append("apply")
        real_apply(retry=retry)

    monkeypatch.setattr(receiver.applier, "apply", apply)
    assert _post(receiver, feed_event("durable")) == 200
    assert steps == ["fsync file", "rename", "fsync folder", "apply"]


def test_the_spool_holds_the_signed_body_and_never_the_secret_or_signature(
    engine: Engine, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    body = feed_event("kept")
    kept = spool.keep(body, NOW)
    text = kept.read_bytes()
    assert text.endswith(b"\n" + body)
    assert SECRET.encode() not in text
    assert base64.b64decode(SECRET) not in text
    assert signed(body)["X-Millicast-Signature"].encode() not in text
    assert oct(kept.stat().st_mode & 0o777) == "0o600"


def test_the_default_spool_is_beside_a_sqlite_archive() -> None:
    assert default_spool_dir("sqlite:////data/archiver.db") == Path(
        "/data/archiver.db.webhook-spool"
    )
    assert default_spool_dir("sqlite://") == Path("webhook-spool")
    assert default_spool_dir("postgresql+psycopg://u@h/db") == Path("webhook-spool")


def test_a_new_receiver_replays_what_the_stopped_one_kept(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    path = tmp_path / "archive.db"
    shutil.copyfile(migrated_sqlite, path)
    locked = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        first, _ = _receiver(locked, Spool(tmp_path / "spool", max_bytes=2**20), [NOW])
        assert [_post(first, feed_event(n)) for n in ("a", "b")] == [202, 202]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        locked.dispose()
    # A new process: the same folder, the archive back, and no event sent.
    engine = db.make_engine(f"sqlite:///{path}")
    second, _ = _receiver(engine, Spool(tmp_path / "spool", max_bytes=2**20), [NOW], 60.0)
    server = WebhookServer(second, address="127.0.0.1", port=0).start()
    try:
        wait_for(lambda: set(tracked(engine)) == {"a", "b"}, what="the replay at start")
    finally:
        server.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    with Simulator(SimConfig(streams=2, seed=2), token=TOKEN, clock="real") as sim:
        yield sim


@pytest.mark.e2e
def test_a_restarted_service_replays_what_its_spool_kept(
    start_service: Callable[..., Process], tmp_path: Path, migrated_sqlite: Path
) -> None:
    path = tmp_path / "archive.db"
    shutil.copyfile(migrated_sqlite, path)
    # What the last process kept and never applied (it died with the archive down).
    left = Spool(default_spool_dir(f"sqlite:///{path}"), max_bytes=2**20)
    for name in ("kept_one", "kept_two"):
        left.keep(feed_event(name), NOW)
    process = start_service(
        "replay",
        f"sqlite:///{path}",
        ARCHIVER_WEBHOOK_PORT=str(free_port()),
        ARCHIVER_WEBHOOK_SECRET=SECRET,
        ARCHIVER_SCHEDULE_INTERVAL_SECONDS="3600",
    )
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        wait_for(lambda: {"kept_one", "kept_two"} <= set(tracked(engine)), what="the replay")
    finally:
        engine.dispose()
    assert left.pending() == []
    assert "webhook-spool" in process.text()
    process.popen.send_signal(signal.SIGTERM)
    assert process.popen.wait(15) == 0
    assert SECRET not in process.text()
