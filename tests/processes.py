"""Helpers for tests that run `archiver` as real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from archiver.store.tables import sync_runs


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def service_cycles(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(sync_runs)
                    .where(sync_runs.c.kind == "service", sync_runs.c.status == "ok")
                ).scalar_one()
            )
    except sa.exc.OperationalError:
        return 0
    except sa.exc.ProgrammingError:
        return 0
    finally:
        engine.dispose()


def run_archiver(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`archiver ARGS` as a user runs it in `cwd`: no ARCHIVER_* setting but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@dataclass
class Ran:
    """What one in-process `archiver` command did, shaped like subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str
