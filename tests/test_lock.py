"""The SQLite instance lock: one lock per database file, whatever its name, and a lock whose
file was deleted or replaced no longer counts."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

import pytest

from archiver.service.lock import FileLock, lock_path


def test_every_name_of_one_database_shares_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    real.touch()
    alias = tmp_path / "alias.db"
    alias.symlink_to(real)
    assert lock_path(str(alias)) == lock_path(str(real))
    first, second = FileLock(lock_path(str(real))), FileLock(lock_path(str(alias)))
    assert first.try_acquire()
    assert not second.try_acquire()
    holder = second.holder()
    assert holder is not None
    first.release()
    assert second.try_acquire()
    second.release()


def test_a_deleted_or_replaced_lock_file_is_no_longer_held(tmp_path: Path) -> None:
    path = tmp_path / "a.db.lock"
    lock = FileLock(path)
    assert lock.try_acquire()
    assert lock.still_held()
    path.unlink()
    assert not lock.still_held()
    rival = FileLock(path)
    assert rival.try_acquire()  # a new file: the rival can lock it...
    assert not lock.still_held()  # ...and ours says so
    rival.release()
    lock.release()


def test_status_probing_the_lock_does_not_make_a_writer_fail(tmp_path: Path) -> None:
    path = tmp_path / "a.db.lock"
    probe = FileLock(path)
    for _ in range(50):
        assert probe.holder() is None
        writer = FileLock(path)
        assert writer.try_acquire()
        assert probe.holder() is not None
        writer.release()


def test_a_writer_waits_for_a_status_probe_to_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.db.lock"
    probe = path.open("a+")  # `archiver status` holding its brief shared flock
    fcntl.flock(probe.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the probe lets go while the writer waits
        waits.append(seconds)
        probe.close()

    monkeypatch.setattr(time, "sleep", wait)
    writer = FileLock(path)
    assert writer.try_acquire()
    assert len(waits) == 1
    writer.release()


def test_a_probe_that_never_lets_go_is_a_taken_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.db.lock"
    with path.open("a+") as probe:
        fcntl.flock(probe.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        waits: list[float] = []
        monkeypatch.setattr(time, "sleep", waits.append)
        assert not FileLock(path).try_acquire()
        assert len(waits) == 4  # five tries, a wait between each


def test_the_holder_is_this_process_whatever_the_file_held_before(tmp_path: Path) -> None:
    path = tmp_path / "a.db.lock"
    # A longer record left by an earlier holder: what remains of it must not spoil ours.
    path.write_text(json.dumps({"host": "h" * 200, "pid": 1, "since": "2026-01-01T00:00:00"}))
    lock = FileLock(path)
    assert lock.try_acquire()
    holder = FileLock(path).holder()
    assert holder is not None
    assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
    assert holder.since is not None
    lock.release()
    assert FileLock(path).holder() is None
