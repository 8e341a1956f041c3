"""One active archiver per database: a PostgreSQL advisory lock, or a lock file beside SQLite."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from archiver.errors import LockError

log = logging.getLogger(__name__)

# pg_advisory_lock key: "archiver" folded into a signed 64-bit integer.
ADVISORY_KEY = int.from_bytes(b"archiver", "big") - (1 << 63)


class InstanceLock(Protocol):
    """Held by the active instance for as long as it runs."""

    def try_acquire(self) -> bool:
        """Take the lock if free; never blocks."""

    def still_held(self) -> bool:
        """Whether the lock is still ours (a lost database session loses it)."""

    def release(self) -> None:
        """Give the lock up."""

    def describe(self) -> str:
        """What is locked, for log lines."""


class FileLock:
    """An exclusive `flock` on `<database file>.lock`; the kernel frees it if we die."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def describe(self) -> str:
        return f"lock file {self.path}"


class AdvisoryLock:
    """A session-level `pg_try_advisory_lock` on a connection kept open while active."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        try:
            conn = self.engine.connect()
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
            ).scalar()
            conn.commit()
        except SQLAlchemyError as exc:
            log.warning("cannot take the instance lock: %s", str(exc).splitlines()[0])
            return False
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1")).scalar()
            self._conn.commit()
            return True
        except SQLAlchemyError:
            # The session died (e.g. PostgreSQL restarted), and its lock with it.
            self._drop()
            return False

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            self._conn.commit()
            self._conn.close()
        except SQLAlchemyError:
            self._drop()
        self._conn = None

    def describe(self) -> str:
        return f"advisory lock on {self.engine.url.render_as_string(hide_password=True)}"


def lock_for(engine: Engine) -> InstanceLock:
    """The right lock for the engine's database."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            raise LockError("archiver run needs a SQLite file, not an in-memory database")
        return FileLock(Path(database + ".lock"))
    raise LockError(f"no instance lock for the {engine.dialect.name} dialect")
