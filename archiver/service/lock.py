"""One active archiver per database: a PostgreSQL advisory lock, or a lock file beside SQLite."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from archiver.errors import LockError

log = logging.getLogger(__name__)

# pg_advisory_lock key: "archiver" folded into a signed 64-bit integer.
ADVISORY_KEY = int.from_bytes(b"archiver", "big") - (1 << 63)


@dataclass(frozen=True)
class Holder:
    """Who holds the lock: for `archiver status` and for the message a second writer gets."""

    host: str
    pid: int
    since: datetime

    def describe(self) -> str:
        """`pid 123 on host db1 since 2026-11-26 12:00 UTC`."""
        return f"pid {self.pid} on host {self.host} since {self.since:%Y-%m-%d %H:%M} UTC"


def _me() -> Holder:
    return Holder(host=socket.gethostname(), pid=os.getpid(), since=datetime.now(UTC))


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

    def holder(self) -> Holder | None:
        """Who holds the lock now (any process), or None when it is free."""


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
        me = _me()
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": me.host, "pid": me.pid, "since": me.since.isoformat()}))
        handle.write("\n")
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
            pid=int(text.strip() or 0) if text.strip().isdigit() else 0,
            since=datetime.fromtimestamp(0, UTC),
        )


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
            me = _me()
            # application_name tells `archiver status` (and pg_stat_activity) who is active.
            label = f"archiver {me.pid} {int(me.since.timestamp())} {me.host}"[:63]
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
            "SELECT a.application_name, a.client_addr::text, a.backend_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :high AND l.objid::bigint = :low"
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
        return Holder(host=str(row[1] or "local socket"), pid=0, since=row[2])

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


def current_holder(database_url: str, engine: Engine) -> Holder | None:
    """Who holds the instance lock of the archive at `database_url`, read without taking it."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return FileLock(Path(str(url.database) + ".lock")).holder() if url.database else None
    return AdvisoryLock(engine).holder()
