"""`export --output` and `report --output` write what the path is: a regular file atomically,
a symlink's target, a FIFO or a device as a stream; anything else is refused with one line."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import Ran

Cli = Callable[..., Ran]
COMMANDS = {
    "export csv": ["export", "--table", "tracked_streams"],
    "export jsonl": ["export", "--table", "tracked_streams", "--format", "jsonl"],
    "report csv": ["report", "--format", "csv"],
    "report html": ["report", "--format", "html"],
}
# What each command's output holds for the archive below.
MARKS = {
    "export csv": "cam-1",
    "export jsonl": '"cam-1"',
    "report csv": "bytes_out",
    "report html": "<html",
}


@pytest.fixture
def archive(cli: Cli, tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {"ARCHIVER_DATABASE_URL": database_url, "ARCHIVER_NOW": "2026-11-20T12:00:00Z"}
    assert cli(["streams", "add", "cam-1"], tmp_path, **env).returncode == 0
    return env


@pytest.fixture(params=sorted(COMMANDS))
def command(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _kind(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


def _device(tmp_path: Path, name: str, minor: int) -> Path:
    """A memory character device of our own (1,3 is null, 1,7 is full): the machine's own
    /dev nodes are never put at risk, even when a broken build runs as root."""
    path = tmp_path / name
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    return path


class Fifo:
    """A FIFO and a reader thread that collects everything written into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self._received: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with open(self.path, "rb") as pipe:
            self._received.append(pipe.read())

    def received(self) -> str:
        """All that was written, once the writer closed it."""
        self._reader.join(60)
        assert not self._reader.is_alive()
        return b"".join(self._received).decode()

    def release(self) -> None:
        """Let a reader still waiting for a writer end (nothing opened the FIFO)."""
        if not stat.S_ISFIFO(os.lstat(self.path).st_mode):
            return  # replaced by a file: the (daemon) reader waits on a FIFO nobody can open
        with contextlib.suppress(OSError):  # no reader left
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
        self._reader.join(60)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Fifo]:
    made = Fifo(tmp_path / "pipe")
    yield made
    made.release()


def test_a_regular_file_is_written_whole(
    cli: Cli, tmp_path: Path, archive: dict[str, str], command: str
) -> None:
    output = tmp_path / "out"
    output.write_text("yesterday\n")
    ran = cli([*COMMANDS[command], "--output", str(output)], tmp_path, **archive)
    assert ran.returncode == 0, ran.stderr
    assert MARKS[command] in output.read_text()
    assert "yesterday" not in output.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_fifo_is_written_as_a_stream_and_stays_a_fifo(
    cli: Cli, tmp_path: Path, archive: dict[str, str], command: str, fifo: Fifo
) -> None:
    ran = cli([*COMMANDS[command], "--output", str(fifo.path)], tmp_path, **archive)
    assert ran.returncode == 0, ran.stderr
    assert _kind(fifo.path) == stat.S_IFIFO
    assert MARKS[command] in fifo.received()


def test_a_character_device_is_written_in_place_never_replaced(
    cli: Cli, tmp_path: Path, archive: dict[str, str], command: str
) -> None:
    null = _device(tmp_path, "null", 3)
    ran = cli([*COMMANDS[command], "--output", str(null)], tmp_path, **archive)
    assert ran.returncode == 0, ran.stderr
    assert _kind(null) == stat.S_IFCHR
    full = _device(tmp_path, "full", 7)
    ran = cli([*COMMANDS[command], "--output", str(full)], tmp_path, **archive)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [
        f"archiver: error: cannot write {full}: No space left on device"
    ]
    assert _kind(full) == stat.S_IFCHR
    assert sorted(p.name for p in tmp_path.iterdir() if p.name in ("null", "full")) == [
        "full",
        "null",
    ]


def test_dev_null_stays_a_device(cli: Cli, tmp_path: Path, archive: dict[str, str]) -> None:
    ran = cli([*COMMANDS["export csv"], "--output", "/dev/null"], tmp_path, **archive)
    assert ran.returncode == 0, ran.stderr
    assert _kind(Path("/dev/null")) == stat.S_IFCHR


def test_a_symlink_is_followed_to_its_target_and_stays_a_link(
    cli: Cli, tmp_path: Path, archive: dict[str, str], command: str
) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "out"
    target.write_text("yesterday\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    ran = cli([*COMMANDS[command], "--output", str(link)], tmp_path, **archive)
    assert ran.returncode == 0, ran.stderr
    assert link.is_symlink()
    assert MARKS[command] in target.read_text()
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "real" / "new")
    ran = cli([*COMMANDS[command], "--output", str(dangling)], tmp_path, **archive)
    assert ran.returncode == 0, ran.stderr
    assert dangling.is_symlink()
    assert MARKS[command] in (tmp_path / "real" / "new").read_text()


def test_a_link_to_a_fifo_writes_into_the_fifo(
    cli: Cli, tmp_path: Path, archive: dict[str, str], fifo: Fifo
) -> None:
    link = tmp_path / "to-pipe"
    link.symlink_to(fifo.path)
    ran = cli([*COMMANDS["export csv"], "--output", str(link)], tmp_path, **archive)
    assert ran.returncode == 0, ran.stderr
    assert link.is_symlink()
    assert _kind(fifo.path) == stat.S_IFIFO
    assert "cam-1" in fifo.received()


def test_a_descriptor_path_is_added_to_never_replaced(
    cli: Cli, tmp_path: Path, archive: dict[str, str]
) -> None:
    # `>> log` and then --output /dev/fd/N: the log keeps its lines, the export is added.
    log = tmp_path / "log"
    log.write_text("earlier line\n")
    with open(log, "a") as handle:
        descriptor = f"/proc/self/fd/{handle.fileno()}"
        ran = cli([*COMMANDS["export csv"], "--output", descriptor], tmp_path, **archive)
    assert ran.returncode == 0, ran.stderr
    text = log.read_text()
    assert text.startswith("earlier line\n")
    assert "cam-1" in text


def test_a_directory_or_a_socket_is_refused_with_one_line(
    cli: Cli, tmp_path: Path, archive: dict[str, str], command: str
) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    ran = cli([*COMMANDS[command], "--output", str(directory)], tmp_path, **archive)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [
        f"archiver: error: cannot write {directory}: it is a directory"
    ]
    assert list(directory.iterdir()) == []
    with socket.socket(socket.AF_UNIX) as listening:
        sock = tmp_path / "sock"
        listening.bind(str(sock))
        ran = cli([*COMMANDS[command], "--output", str(sock)], tmp_path, **archive)
        assert ran.returncode == 1
        assert ran.stderr.strip().splitlines() == [
            f"archiver: error: cannot write {sock}: not a regular file, FIFO or character device"
        ]
        assert _kind(sock) == stat.S_IFSOCK
