"""The webhook spool: accepted events kept on local disk, fsynced, until the archive holds them."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from archiver.config import Settings
from archiver.errors import ArchiverError
from archiver.store.db import sqlite_target

log = logging.getLogger(__name__)

SUFFIX = ".event"
QUARANTINE = "quarantine"
LOCK_FILE = ".lock"
# A file takes at least one block on disk: counting each at a block or more keeps the bound
# true of the disk, not only of the bytes written.
BLOCK = 4096
# A `.tmp` file this old was left by a process that died before answering: never accepted.
STALE_TMP_SECONDS = 3600
MAGIC = b"archiver-webhook-spool 1 "


class SpoolFull(ArchiverError):
    """The spool holds its maximum: the event is refused (503), never silently dropped."""


class SpoolDamaged(ArchiverError):
    """A spooled file that cannot be read back as an event."""


@dataclass(frozen=True)
class Spooled:
    """One event read back: when it arrived and its body as the vendor signed it."""

    path: Path
    received_at: datetime
    body: bytes


def default_spool_dir(database_url: str) -> Path:
    """Beside a SQLite archive's file (`archiver.db.webhook-spool`); otherwise (PostgreSQL, a
    memory archive) `webhook-spool` in the working folder."""
    target = sqlite_target(database_url)
    if target is not None and target.path is not None:
        return target.path.with_name(target.path.name + ".webhook-spool")
    return Path("webhook-spool")


def spool_for(settings: Settings) -> Spool:
    """The spool the settings name (ARCHIVER_WEBHOOK_SPOOL_DIR, _MAX_BYTES), created if new."""
    root = settings.webhook_spool_dir or default_spool_dir(settings.database_url)
    return Spool(root, max_bytes=settings.webhook_spool_max_bytes)


def _cost(size: int) -> int:
    return max(BLOCK, -(-size // BLOCK) * BLOCK)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """One file per event in `root`, named so that sorting the names is arrival order.

    A file is written under a `.tmp` name, fsynced, renamed and its folder fsynced before
    `keep` returns: an event `keep` returned for survives a crash of the process or host.
    """

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.quarantine_dir = root / QUARANTINE
        self.max_bytes = max_bytes
        self._guard = threading.Lock()
        self._last = 0
        self._sequence = 0
        try:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ArchiverError(
                f"cannot create the webhook spool {root} (ARCHIVER_WEBHOOK_SPOOL_DIR): "
                f"{exc.strerror or exc}"
            ) from exc
        self._bytes = self._measure()

    def __repr__(self) -> str:
        return f"Spool({str(self.root)!r})"

    def _measure(self) -> int:
        total = 0
        for folder in (self.root, self.quarantine_dir):
            for entry in os.scandir(folder):
                if entry.is_file() and entry.name != LOCK_FILE:
                    try:
                        total += _cost(entry.stat().st_size)
                    except FileNotFoundError:  # applied by another process meanwhile
                        continue
        return total

    @property
    def used_bytes(self) -> int:
        """What the spool's files take, pending and quarantined (each at least a block)."""
        return self._bytes

    def _name(self) -> str:
        with self._guard:
            # Never behind the last name, even if the clock steps back.
            self._last = max(time.time_ns(), self._last + 1)
            self._sequence += 1
            return f"{self._last:020d}-{os.getpid()}-{self._sequence:08d}{SUFFIX}"

    def keep(self, body: bytes, received_at: datetime) -> Path:
        """Write one event durably; SpoolFull when it would pass the bound, OSError if the
        disk refuses it (nothing is left behind either way)."""
        data = MAGIC + received_at.isoformat().encode() + b"\n" + body
        cost = _cost(len(data))
        with self._guard:
            if self._bytes + cost > self.max_bytes:
                raise SpoolFull(
                    f"the webhook spool {self.root} is full ({self._bytes} of "
                    f"{self.max_bytes} bytes, ARCHIVER_WEBHOOK_SPOOL_MAX_BYTES)"
                )
            self._bytes += cost  # reserved before writing: concurrent writers see it
        name = self._name()
        final = self.root / name
        tmp = self.root / (name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
            _fsync_dir(self.root)  # the name itself is durable only once its folder is
        except OSError:
            with self._guard:
                self._bytes -= cost
            tmp.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            raise
        return final

    def pending(self) -> list[Path]:
        """Events not yet applied, oldest first; stale `.tmp` files are removed."""
        names: list[str] = []
        for entry in os.scandir(self.root):
            if entry.name.endswith(SUFFIX):
                names.append(entry.name)
            elif entry.name.endswith(".tmp"):
                self._remove_stale(Path(entry.path))
        return [self.root / name for name in sorted(names)]

    def _remove_stale(self, path: Path) -> None:
        try:
            if time.time() - path.stat().st_mtime > STALE_TMP_SECONDS:
                path.unlink()
        except FileNotFoundError:
            return

    def read(self, path: Path) -> Spooled:
        """The event in `path`; SpoolDamaged if it is not one this spool wrote."""
        data = path.read_bytes()
        head, newline, body = data.partition(b"\n")
        if not newline or not head.startswith(MAGIC):
            raise SpoolDamaged(f"{path.name}: no spool header")
        try:
            received_at = datetime.fromisoformat(head[len(MAGIC) :].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise SpoolDamaged(f"{path.name}: unreadable arrival time") from None
        if received_at.tzinfo is None:
            raise SpoolDamaged(f"{path.name}: arrival time without a zone")
        return Spooled(path=path, received_at=received_at, body=body)

    def discard(self, path: Path) -> None:
        """Forget an event whose transaction committed (gone already: another process did)."""
        # No folder fsync: an unlink lost in a crash only applies the event again, harmlessly.
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        with self._guard:
            self._bytes = max(0, self._bytes - _cost(size))

    def quarantine(self, path: Path) -> Path:
        """Move an event that cannot be applied aside, where it is kept for a person to read."""
        target = self.quarantine_dir / path.name
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return target
        _fsync_dir(self.root)
        return target

    def recount(self) -> int:
        """Measure the folder again (another process sharing it may have written or applied)."""
        measured = self._measure()
        with self._guard:
            self._bytes = measured
        return measured

    @contextmanager
    def exclusive(self, *, wait: bool = True) -> Iterator[bool]:
        """Held while applying: one applier at a time, across threads and processes. Yields
        False, holding nothing, if another holds it and `wait` is False."""
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the lock
