"""A PostgreSQL server of a test's own, for tests that stop and restart the server.

The outage tests once restarted the machine's server, so nothing else could use it meanwhile
and the suite could not run in parallel. This starts the same PostgreSQL binaries on a data
directory in a temporary folder (as the `postgres` user when run as root: the server refuses
to run as root), with trust authentication. It listens on a Unix socket in that folder only,
so no TCP port can be taken by another test between a stop and the next start.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


class Cluster:
    """initdb, start, stop and restart one private server; `url(name)` for its databases."""

    def __init__(self, root: Path, bin_dir: Path) -> None:
        self.root = root
        self.bin = bin_dir
        self.data = root / "data"
        self.log = root / "server.log"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "--auth=trust", "--username=postgres", "-D", str(self.data))
        self._options = f"-c listen_addresses='' -k {root} -c fsync=off"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {args[0]} failed: {done.stderr.strip()}\n{log}")

    def _ctl(self, action: str) -> None:
        data = str(self.data)
        self._run("pg_ctl", action, "-w", "-D", data, "-o", self._options, "-l", str(self.log))

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-D", str(self.data), "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}"


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A running private server, stopped and deleted afterwards. Without PostgreSQL's server
    binaries the test skips, or fails under `CI=true` (as the other PostgreSQL tests do)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        reason = "no PostgreSQL server binaries under /usr/lib/postgresql"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL is required in CI: {reason}")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
    root.chmod(0o755)
    try:
        cluster = Cluster(root, bin_dir)
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(RuntimeError):  # stopped by the test already
                cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
