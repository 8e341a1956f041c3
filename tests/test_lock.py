"""The SQLite instance lock: one lock per database file, whatever its name, and a lock whose
file was deleted or replaced no longer counts."""

from __future__ import annotations

from pathlib import Path

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
