"""The archive as commands open it (writable, sole writer, read-only) and safe output files."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from archiver.cycle.report import current_time
from archiver.errors import ConfigError, InputError, LockError
from archiver.store import db

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from archiver.config import Settings

log = logging.getLogger("archiver.cli")


def writable_url(settings: Settings) -> str:
    """The database URL, refused when it names an archive that would keep nothing."""
    if db.is_memory_sqlite(settings.database_url):
        raise ConfigError(
            "invalid setting ARCHIVER_DATABASE_URL: an in-memory SQLite database keeps "
            "nothing; name a file such as sqlite:///archiver.db"
        )
    return settings.database_url


@contextmanager
def archive(settings: Settings) -> Iterator[Engine]:
    """The migrated archive the settings name, for commands that write; one clear error if
    it cannot be reached."""
    engine = db.make_engine(writable_url(settings))
    try:
        db.upgrade(engine)
        yield engine
    finally:
        engine.dispose()


@contextmanager
def sole_writer(settings: Settings) -> Iterator[Engine]:
    """The archive, locked with the instance lock `archiver run` holds, then migrated: one
    writer at a time.

    A one-shot `sync` or `backfill` beside a running service exits with one line instead of
    waiting: the service already keeps the archive up to date.
    """
    # The writers' own modules: read-only commands, which open the archive here too, skip them.
    from archiver.service.lock import lock_for
    from archiver.store.state import interrupt_stale_runs

    engine = db.make_engine(writable_url(settings))
    try:
        db.check_connection(engine)
        lock = lock_for(engine)
        if not lock.try_acquire():
            if lock.problem:
                raise LockError(f"cannot take the instance lock: {lock.problem}")
            holder = lock.holder()
            who = f" ({holder.describe()})" if holder else ""
            raise LockError(
                f"another archiver is writing to this database{who}; it already keeps the "
                "archive up to date. Run this command when it has stopped."
            )
        try:
            # Only the lock holder migrates: a newer cron `sync` must not change the schema
            # under a running older service.
            db.upgrade(engine)
            with db.transaction(engine) as conn:
                stale = interrupt_stale_runs(conn=conn, at=current_time(settings))
            if stale:
                log.warning("marked %d run(s) left running by a stopped process interrupted", stale)
            yield engine
        finally:
            lock.release()
    finally:
        engine.dispose()


@contextmanager
def archive_readonly(settings: Settings) -> Iterator[Engine]:
    """The existing archive, opened so that nothing can be written or migrated."""
    engine = db.open_readonly(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _database_files(settings: Settings) -> list[Path]:
    """The SQLite database file and its companions (none for PostgreSQL)."""
    target = db.sqlite_target(settings.database_url)
    if target is None or target.path is None:
        return []
    base = target.path
    return [base, *(Path(f"{base}{suffix}") for suffix in ("-wal", "-shm", "-journal"))]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def write_output(output: Path, settings: Settings, write: Callable[[TextIO], int]) -> int:
    """Write an export or report to `output` by what `output` is.

    A regular file (or a new name) is written through a temporary file beside it, renamed at
    the end; a symlink is followed and its target written by the same rules; a FIFO, a
    character device (`/dev/null`) or an open descriptor (`/dev/stdout`) is written in place
    as a stream, never replaced. Anything else, and the archive itself, is refused with one line.
    """
    for path in _database_files(settings):
        if _same_file(output, path):
            raise InputError(f"refusing to write onto the database file {path}")
    try:
        mode: int | None = os.stat(output).st_mode  # follows symlinks, /dev/stdout's too
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from exc
    if _names_open_descriptor(output) or (
        mode is not None and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode))
    ):
        return _write_stream(output, write)
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError(f"cannot write {output}: it is a directory")
    if mode is not None and not stat.S_ISREG(mode):
        raise InputError(f"cannot write {output}: not a regular file, FIFO or character device")
    # A link is never replaced by a file: its (possibly not yet existing) target is written.
    target = Path(os.path.realpath(output)) if output.is_symlink() else output
    return _write_replacing(output, target, write)


# /dev/stdout, /dev/fd/3, /proc/self/fd/1: a descriptor already open, whatever it points at
# (a shell's `>> log` must be added to, never replaced by a new file).
_DESCRIPTOR = re.compile(r"/dev/(stdout|stderr|fd/\d+)|/proc/[^/]+/fd/\d+")


def _names_open_descriptor(output: Path) -> bool:
    path = os.path.abspath(output)
    for _ in range(40):  # the kernel's own limit on links followed
        if _DESCRIPTOR.fullmatch(path):
            return True
        if not os.path.islink(path):
            return False
        path = os.path.join(os.path.dirname(path), os.readlink(path))
        path = os.path.normpath(path)
    return False


def _write_stream(output: Path, write: Callable[[TextIO], int]) -> int:
    try:
        # No O_CREAT, no O_TRUNC: a stream is added to, never made, emptied or replaced.
        fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            return write(handle)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from exc


def _write_replacing(output: Path, target: Path, write: Callable[[TextIO], int]) -> int:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8", newline="") as handle:
            count = write(handle)
        os.replace(temporary, target)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from exc
    finally:
        if temporary.exists():
            temporary.unlink()
    return count
