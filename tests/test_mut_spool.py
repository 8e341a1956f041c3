"""The webhook spool, pinned where mutation testing found it loose (issue 21 item 8): where it
lives, what it counts, what a failed write leaves, stale `.tmp` files, damaged files, and its
applier lock, each through the folder, the descriptors and the locks another process sees."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from archiver.config import Settings
from archiver.errors import ArchiverError
from archiver.service import spool as spool_module
from archiver.service.spool import BLOCK, LOCK_FILE, MAGIC, Spool, SpoolDamaged, spool_for

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BODY = b'{"type": "feeds", "event": "started", "data": {"name": "cam"}}'


def until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `predicate` (never a fixed wait: only the deadline of a test that failed)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def flock_waiters(path: Path) -> int:
    """How many flock requests on `path` the kernel has queued, blocked (`/proc/locks`)."""
    inode = f":{path.stat().st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and "FLOCK" in line and inode in line)


def in_thread(action: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `action` in a thread; the thread, and the list its result lands in."""
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(action()), daemon=True)
    thread.start()
    return thread, results


def joined(thread: threading.Thread) -> None:
    thread.join(30)
    assert not thread.is_alive()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- where the spool lives -------------------------------------------------------------------


def test_the_spool_folder_is_the_setting_or_else_beside_the_archive(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'archive.db'}"
    chosen = spool_for(
        Settings(_env_file=None, database_url=database, webhook_spool_dir=tmp_path / "chosen")
    )
    assert chosen.root == tmp_path / "chosen"
    beside = spool_for(Settings(_env_file=None, database_url=database))
    assert beside.root == tmp_path / "archive.db.webhook-spool"
    assert beside.quarantine_dir.is_dir()


def test_a_spool_that_cannot_be_created_says_why_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ArchiverError) as raised:
        Spool(tmp_path / "a_file" / "spool", max_bytes=2**20)
    assert str(raised.value) == (
        f"cannot create the webhook spool {tmp_path / 'a_file' / 'spool'} "
        "(ARCHIVER_WEBHOOK_SPOOL_DIR): Not a directory"
    )


# --- what it counts --------------------------------------------------------------------------


def test_the_count_is_the_events_files_not_its_folders_nor_its_lock(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    with spool.exclusive():  # the applier lock file now exists
        pass
    assert (spool.root / LOCK_FILE).exists()
    assert spool.recount() == 0
    kept = spool.keep(b"x" * (BLOCK + 1), NOW)  # more than a block: two
    spool.keep(BODY, NOW)
    assert spool.used_bytes == 3 * BLOCK
    assert Spool(spool.root, max_bytes=2**20).used_bytes == 3 * BLOCK  # measured again
    spool.quarantine(kept)
    assert spool.recount() == 3 * BLOCK  # quarantined events still take their room
    spool.discard(spool.pending()[0])
    assert spool.used_bytes == 2 * BLOCK
    spool.discard(spool.root / "gone.event")  # applied by another process: nothing changes
    assert spool.used_bytes == 2 * BLOCK


def test_an_event_that_fills_the_spool_exactly_is_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2 * BLOCK)
    spool.keep(BODY, NOW)
    spool.keep(BODY, NOW)
    assert spool.used_bytes == spool.max_bytes
    with pytest.raises(spool_module.SpoolFull):
        spool.keep(BODY, NOW)


def test_a_clock_stepping_back_never_reorders_the_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readings = iter([2_000_000_000_000_000_000, 1_000_000_000_000_000_000])
    clock = SimpleNamespace(time_ns=lambda: next(readings), time=time.time)
    monkeypatch.setattr("archiver.service.spool.time", clock)
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    first = spool.keep(b"first", NOW)
    second = spool.keep(b"second", NOW)
    assert spool.pending() == [first, second]
    assert second.name > first.name


# --- what a write leaves ---------------------------------------------------------------------


def test_keeping_an_event_leaves_no_descriptor_open(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    spool.keep(BODY, NOW)  # any first-use allocation out of the way
    before = open_descriptors()
    for _ in range(3):
        spool.keep(BODY, NOW)
        spool.quarantine(spool.pending()[0])
        with spool.exclusive():
            pass
    assert open_descriptors() == before


@pytest.mark.parametrize("failing", ["file", "folder"])
def test_a_write_the_disk_refuses_leaves_nothing_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        is_folder = Path(os.readlink(f"/proc/self/fd/{fd}")).is_dir()
        if is_folder == (failing == "folder"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left on device") as raised:
        spool.keep(BODY, NOW)
    assert raised.value.errno == errno.ENOSPC  # the disk's own error, not a cleanup's
    assert sorted(p.name for p in spool.root.iterdir()) == ["quarantine"]
    assert spool.used_bytes == 0


# --- stale .tmp files ------------------------------------------------------------------------


def test_only_a_tmp_file_older_than_an_hour_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    written = 1_800_000_000
    tmp = spool.root / "x.event.tmp"
    tmp.write_bytes(b"half")
    os.utime(tmp, (written, written))
    for now, left in ((written, True), (written + 3600, True), (written + 3601, False)):
        clock = SimpleNamespace(time=lambda now=now: float(now), time_ns=time.time_ns)
        monkeypatch.setattr("archiver.service.spool.time", clock)
        assert spool.pending() == []
        assert tmp.exists() == left, now - written


# --- damaged files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"no header at all\n" + BODY, "no spool header"),
        (MAGIC + NOW.isoformat().encode(), "no spool header"),  # cut before its line ended
        (MAGIC + b"2026-11-20T12:00:00\n" + BODY, "arrival time without a zone"),
        (MAGIC + b"yesterday\n" + BODY, "unreadable arrival time"),
    ],
)
def test_a_damaged_file_is_refused_with_its_reason(tmp_path: Path, data: bytes, why: str) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    path = spool.root / f"{1:020d}-1-00000001.event"
    path.write_bytes(data)
    with pytest.raises(SpoolDamaged) as raised:
        spool.read(path)
    assert str(raised.value) == f"{path.name}: {why}"


def test_an_event_is_read_back_as_it_was_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    kept = spool.read(spool.keep(BODY, NOW))
    assert (kept.received_at, kept.body) == (NOW, BODY)


def test_a_quarantined_event_is_moved_durably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    path = spool.keep(BODY, NOW)
    synced: list[Path] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))

    monkeypatch.setattr(os, "fsync", fsync)
    assert spool.quarantine(path) == spool.quarantine_dir / path.name
    assert synced == [spool.root]
    assert spool.quarantine(path) == spool.quarantine_dir / path.name  # already moved: no-op
    assert synced == [spool.root]


# --- the applier lock ------------------------------------------------------------------------


def test_one_applier_at_a_time_and_the_lock_is_let_go(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)
    with spool.exclusive() as first:
        assert first
        with spool.exclusive(wait=False) as second:
            assert not second
    with spool.exclusive(wait=False) as third:
        assert third


def test_by_default_an_applier_waits_for_the_one_before_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2**20)

    def take() -> bool:
        with spool.exclusive() as held:
            return held

    with spool.exclusive():
        thread, results = in_thread(take)
        until(
            lambda: bool(results) or flock_waiters(spool.root / LOCK_FILE) == 1,
            "the second applier to queue or give up",
        )
        assert results == []  # it did not give up: it waits
    joined(thread)
    assert results == [True]
