"""One active archiver per database: a PostgreSQL advisory lock, or a lock file beside SQLite."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from archiver.errors import LockError
from archiver.store.db import sqlite_target

log = logging.getLogger(__name__)

# pg_advisory_lock key: "archiver" folded into a signed 64-bit integer.
ADVISORY_KEY = int.from_bytes(b"archiver", "big") - (1 << 63)


@dataclass(frozen=True)
class Holder:
    """Who holds the lock: for `archiver status` and for the message a second writer gets."""

    host: str
    pid: int
    since: datetime | None

    def describe(self) -> str:
        """`pid 123 on host db1 since 2026-11-26 12:00 UTC`."""
        since = "" if self.since is None else f" since {self.since:%Y-%m-%d %H:%M} UTC"
        return f"pid {self.pid} on host {self.host}{since}"


def _me() -> tuple[str, int, datetime]:
    """This process: host, pid, and now (when it takes the lock)."""
    return socket.gethostname(), os.getpid(), datetime.now(UTC)


class InstanceLock(Protocol):
    """Held by the active instance for as long as it runs."""

    problem: str | None  # why the last try_acquire could not even ask, if it could not

    def try_acquire(self) -> bool:
        """Take the lock if free; never blocks."""

    def still_held(self) -> bool:
        """Whether the lock is still ours (a lost database session loses it)."""

    def release(self) -> None:
        """Give the lock up."""

    def describe(self) -> str:
        """What is locked, for log lines."""

    def holder(self) -> Holder | None:
        """Who holds the lock now (any process), or None when it is free."""


class FileLock:
    """An exclusive `flock` on `<database file>.lock`; the kernel frees it if we die."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self.problem: str | None = None  # a failure to take it is raised, never kept

    def try_acquire(self) -> bool:
        try:
            handle = self.path.open("a+")
        except OSError as exc:
            raise LockError(f"cannot use the lock file {self.path}: {exc.strerror}") from exc
        # `archiver status` probes the lock with a brief shared flock: try a few times.
        for attempt in range(5):
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 4:
                    handle.close()
                    return False
                time.sleep(0.02)
        host, pid, since = _me()
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": host, "pid": pid, "since": since.isoformat()}))
        handle.write("\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        # The lock is on the open file: if the path was deleted or replaced, a second writer
        # could lock the new file, so ours no longer counts.
        if self._file is None:
            return False
        try:
            ours, there = os.fstat(self._file.fileno()), os.stat(self.path)
        except OSError:
            return False
        return (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino)

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def describe(self) -> str:
        return f"lock file {self.path}"

    def holder(self) -> Holder | None:
        """The process holding the lock file, read without taking it; None when free."""
        try:
            handle = self.path.open("r")
        except OSError:
            return None
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _parse_holder(handle.read())
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return None


def _parse_holder(text: str) -> Holder:
    try:
        data = json.loads(text)
        return Holder(
            host=str(data["host"]),
            pid=int(data["pid"]),
            since=datetime.fromisoformat(data["since"]),
        )
    except (ValueError, KeyError, TypeError):
        # Written by an older archiver (a bare pid), or mid-write.
        return Holder(
            host="?",
            pid=int(text.strip()) if text.strip().isdigit() else 0,
            since=None,
        )


class AdvisoryLock:
    """A session-level `pg_try_advisory_lock` on a connection kept open while active."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self.problem: str | None = None

    def try_acquire(self) -> bool:
        self.problem = None
        conn: Connection | None = None
        try:
            conn = self.engine.connect()
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
            ).scalar()
            conn.commit()
        except BaseException as exc:
            # The connection is kept only with the lock: a failed ask must not leak it.
            if conn is not None:
                with suppress(SQLAlchemyError):
                    conn.close()
            if not isinstance(exc, SQLAlchemyError):
                raise
            # Not "someone else holds it": the database could not be asked at all.
            self.problem = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            log.warning("cannot take the instance lock: %s", self.problem)
            return False
        if got:
            host, pid, since = _me()
            # application_name tells `archiver status` (and pg_stat_activity) who is active.
            label = f"archiver {pid} {int(since.timestamp())} {host}"[:63]
            try:
                conn.execute(
                    sa.text("SELECT set_config('application_name', :label, false)"),
                    {"label": label},
                )
                conn.commit()
            except SQLAlchemyError:
                pass
            self._conn = conn
            return True
        conn.close()
        return False

    def holder(self) -> Holder | None:
        """The session holding the advisory lock, from pg_locks; None when free."""
        unsigned = ADVISORY_KEY & 0xFFFFFFFFFFFFFFFF
        query = sa.text(
            "SELECT a.application_name, a.client_addr::text, a.backend_start, a.pid "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :high AND l.objid::bigint = :low "
            # Advisory locks are per database, but pg_locks shows the whole server's: an
            # archiver on another database of this server is not this archive's writer.
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with self.engine.connect() as conn:
            row = conn.execute(
                query, {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}
            ).first()
        if row is None:
            return None
        parts = str(row[0] or "").split(" ", 3)
        if len(parts) == 4 and parts[0] == "archiver" and parts[1].isdigit() and parts[2].isdigit():
            return Holder(
                host=parts[3], pid=int(parts[1]), since=datetime.fromtimestamp(int(parts[2]), UTC)
            )
        # Not an archiver's label (another client, or an older archiver): the session's view.
        return Holder(host=str(row[1] or "local socket"), pid=int(row[3] or 0), since=row[2])

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
            self._conn.execute(sa.text("RESET application_name"))
            self._conn.commit()
            self._conn.close()
        except SQLAlchemyError:
            self._drop()
        self._conn = None

    def describe(self) -> str:
        return f"advisory lock on {self.engine.url.render_as_string(hide_password=True)}"


def lock_path(database: str) -> Path:
    """The lock file of a SQLite archive: beside the real file (symlinks resolved), so that
    every name of one database shares one lock."""
    return Path(str(Path(database).resolve()) + ".lock")


def lock_for(engine: Engine) -> InstanceLock:
    """The right lock for the engine's database."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    if engine.dialect.name == "sqlite":
        target = sqlite_target(engine.url)
        if target is None or target.path is None:
            raise LockError("archiver run needs a SQLite file, not an in-memory database")
        return FileLock(lock_path(str(target.path)))
    raise LockError(f"no instance lock for the {engine.dialect.name} dialect")


def current_holder(database_url: str, engine: Engine) -> Holder | None:
    """Who holds the instance lock of the archive at `database_url`, read without taking it."""
    target = sqlite_target(database_url)
    if target is not None:
        return FileLock(lock_path(str(target.path))).holder() if target.path else None
    return AdvisoryLock(engine).holder()
