"""A PostgreSQL server of a test's own, for tests that stop and restart the server.

The outage tests once restarted the machine's server, so nothing else could use it meanwhile
and the suite could not run in parallel. This starts the same PostgreSQL binaries on a data
directory in a temporary folder and a free port (as the `postgres` user when run as root:
the server refuses to run as root), with trust authentication on loopback only.
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

from tests.processes import free_port


def _bin_dir() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return versions[-1].parent


class Cluster:
    """initdb, start, stop and restart one private server; `url(name)` for its databases."""

    def __init__(self, root: Path) -> None:
        self.bin = _bin_dir()
        self.data = root / "data"
        self.port = free_port()
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "--auth=trust", "--username=postgres", "-D", str(self.data))
        options = f"-p {self.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._options = options
        self.log = root / "server.log"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def _ctl(self, action: str) -> None:
        self._run(
            "pg_ctl",
            action,
            "-w",
            "-D",
            str(self.data),
            "-o",
            self._options,
            "-l",
            str(self.log),
            "-m",
            "fast",
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop")

    def restart(self) -> None:
        self._ctl("restart")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A running private server, stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
    root.chmod(0o755)
    try:
        cluster = Cluster(root)
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):  # stopped by the test
                cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
