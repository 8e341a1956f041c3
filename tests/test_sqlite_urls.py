"""One reading of a SQLite URL (`db.sqlite_target`), checked against the file the driver
really opens, used alike by the writer, read-only opener, dry run, lock and export."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from archiver.cli._archive import writable_url, write_output
from archiver.cycle.dry_run import existing_archive
from archiver.errors import ConfigError, DatabaseError, InputError
from archiver.service.lock import FileLock, lock_for
from archiver.store import db
from tests.test_sync_paths import settings

# (URL, the file it names relative to the working directory or None for memory, uri=true)
FORMS: list[tuple[str, str | None, bool]] = [
    ("sqlite://", None, False),
    ("sqlite:///:memory:", None, False),
    ("sqlite:///a.db", "a.db", False),
    ("sqlite+pysqlite:///a.db", "a.db", False),
    ("sqlite:///a.db?timeout=5", "a.db", False),
    ("sqlite:///sub/a.db", "sub/a.db", False),
    ("sqlite:///a%20b.db", "a b.db", False),
    ("sqlite:///file:d.db", "file:d.db", False),  # no uri=true: a plain file name
    ("sqlite:///file:c.db?uri=true", "c.db", True),
    ("sqlite:///file:c.db?mode=rwc&uri=true", "c.db", True),
    ("sqlite:///file::memory:?uri=true", None, True),
    ("sqlite:///file:m?mode=memory&uri=true", None, True),
]
FILES = [(url, name) for url, name, _ in FORMS if name is not None]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(("url", "name", "uri"), FORMS)
def test_the_reading_is_the_file_the_driver_opens(url: str, name: str | None, uri: bool) -> None:
    target = db.sqlite_target(url)
    assert target == db.SqliteTarget(None if name is None else Path(name), uri)
    # The pool class is named: SQLAlchemy warns when it picks one by `mode=memory`.
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            opened = conn.exec_driver_sql("PRAGMA database_list").one()[2]
    finally:
        engine.dispose()
    assert opened == ("" if name is None else str(Path(name).resolve()))
    assert db.is_memory_sqlite(url) is (name is None)


def test_other_databases_are_not_sqlite() -> None:
    assert db.sqlite_target("postgresql://u:secret@h/archive") is None
    assert not db.is_memory_sqlite("postgresql://u:secret@h/archive")


@pytest.mark.parametrize(("url", "name", "uri"), [f for f in FORMS if f[1] is None])
def test_memory_forms_are_refused_for_writing(url: str, name: None, uri: bool) -> None:
    with pytest.raises(ConfigError, match="in-memory SQLite database keeps nothing"):
        writable_url(settings(database_url=url))


@pytest.mark.parametrize(("url", "name"), FILES)
def test_the_export_never_writes_onto_the_database_file(url: str, name: str) -> None:
    with pytest.raises(InputError, match="refusing to write onto the database file"):
        write_output(Path(name), settings(database_url=url), lambda out: out.write("x"))


@pytest.mark.parametrize(("url", "name"), FILES)
def test_every_name_of_a_file_takes_the_files_lock(url: str, name: str) -> None:
    engine = db.make_engine(url)
    try:
        lock = lock_for(engine)
    finally:
        engine.dispose()
    assert isinstance(lock, FileLock)
    assert lock.path == Path(f"{Path(name).resolve()}.lock")


@pytest.mark.parametrize(("url", "uri"), [(u, uri) for u, _, uri in FORMS])
def test_the_read_only_open_takes_only_a_plain_existing_file(url: str, uri: bool) -> None:
    target = db.sqlite_target(url)
    assert target is not None
    if target.path is not None and not uri:
        message = f"no archive at {target.path}"
    else:
        message = "names an in-memory or URI-style SQLite database"
    with pytest.raises(DatabaseError, match=message):
        db.open_readonly(url)


@pytest.mark.parametrize(("url", "name"), FILES)
def test_a_dry_run_finds_no_archive_where_no_file_is_yet(url: str, name: str) -> None:
    with existing_archive(settings(database_url=url)) as engine:
        assert engine is None
    assert not Path(name).exists()  # and creates none


def test_a_url_is_read_once_whether_given_as_text_or_parsed() -> None:
    for url, _, _ in FORMS:
        assert db.sqlite_target(sa.make_url(url)) == db.sqlite_target(url)
