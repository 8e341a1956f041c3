"""Export path safety and the archive as commands open it, mutant by mutant.

Each test kills mutants of `archiver/cli/_archive.py` the older tests let live
(bench/MUTATION.md names them): a name the system refuses to look at, a chain of links as
long as the kernel follows, and the sole writer's lock, migration and log line.
"""

from __future__ import annotations

import gc
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import pytest
import sqlalchemy as sa

from archiver.cli._archive import archive, archive_readonly, sole_writer, write_output
from archiver.errors import DatabaseError, InputError, LockError
from archiver.store import db
from archiver.store.tables import sync_runs
from tests.test_sync_paths import settings

AT = datetime(2026, 11, 20, 11, tzinfo=UTC)


def _write(handle: TextIO) -> int:
    handle.write("new\n")
    return 1


def test_a_name_too_long_to_look_at_is_one_error_line_not_the_database(tmp_path: Path) -> None:
    archive = tmp_path / "archive.db"
    archive.touch()
    output = tmp_path / ("x" * 300)
    with pytest.raises(InputError) as refused:
        write_output(output, settings(database_url=f"sqlite:///{archive}"), _write)
    assert str(refused.value) == f"cannot write {output}: File name too long"


def test_a_chain_of_forty_links_to_a_file_replaces_the_file(tmp_path: Path) -> None:
    # The kernel follows 40 links in one path; the descriptor check follows as many, and a
    # chain that long ends at a plain file: it is replaced, never appended to as a stream.
    target = tmp_path / "file"
    target.write_text("yesterday\n")
    previous = target
    for number in range(40, 0, -1):
        link = tmp_path / f"link{number}"
        link.symlink_to(previous.name)
        previous = link
    assert os.stat(previous).st_mode  # the kernel follows the whole chain
    written = write_output(previous, settings(database_url="sqlite:///archive.db"), _write)
    assert written == 1
    assert target.read_text() == "new\n"
    assert previous.is_symlink()


def test_a_postgresql_archive_has_no_file_to_protect(tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    url = "postgresql+psycopg://nobody@127.0.0.1:1/archive"  # never connected to
    assert write_output(output, settings(database_url=url), _write) == 1
    assert output.read_text() == "new\n"


def test_the_sole_writer_migrates_a_new_archive_and_lets_go_of_the_lock(tmp_path: Path) -> None:
    config = settings(database_url=f"sqlite:///{tmp_path / 'archive.db'}")
    with sole_writer(config) as engine, engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sync_runs)).scalar() == 0
    # Let go: the next one-shot command takes the lock at once.
    with sole_writer(config) as engine:
        assert engine.url.database == str(tmp_path / "archive.db")


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    config = settings(database_url=f"sqlite:///{tmp_path / 'archive.db'}")
    refused = pytest.raises(LockError, match="another archiver is writing")
    with sole_writer(config), refused, sole_writer(config):
        pytest.fail("two writers at once")


def test_runs_left_running_are_interrupted_and_the_operator_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sync_runs.insert().values(kind="sync", started_at=AT, status="running"))
    engine.dispose()
    caplog.set_level(logging.WARNING, logger="archiver.cli")
    with sole_writer(settings(database_url=url)) as writer, writer.connect() as conn:
        assert conn.execute(sa.select(sync_runs.c.status)).scalars().all() == ["interrupted"]
    assert [r.getMessage() for r in caplog.records if r.name == "archiver.cli"] == [
        "marked 1 run(s) left running by a stopped process interrupted"
    ]


def test_an_archive_that_cannot_be_reached_is_one_database_error(tmp_path: Path) -> None:
    config = settings(database_url=f"sqlite:///{tmp_path / 'no' / 'such' / 'archive.db'}")
    with pytest.raises(DatabaseError, match="cannot reach the database"), sole_writer(config):
        pytest.fail("opened an archive in a folder that does not exist")


def _open_in(folder: Path) -> list[str]:
    """What this process holds open in `folder` (its descriptors, as /proc names them)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed meanwhile
            continue
        if target.startswith(f"{folder}/"):
            held.append(target)
    return sorted(held)


def test_each_way_of_opening_the_archive_closes_it_after(tmp_path: Path) -> None:
    # A command leaves no descriptor on the archive behind (the service's status probes and
    # gauges open it again and again). The garbage collector would close a forgotten engine
    # some time later: it is held off, so that "later" cannot hide one.
    config = settings(database_url=f"sqlite:///{tmp_path / 'archive.db'}")
    gc.disable()
    try:
        for opening in (archive, archive_readonly, sole_writer):
            with opening(config) as engine, engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                assert _open_in(tmp_path)
            assert _open_in(tmp_path) == [], opening.__name__
    finally:
        gc.enable()
