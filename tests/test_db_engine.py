"""The store's engines: SQLite's settings, a dropped PostgreSQL connection replaced, errors
named where they happen, and nothing left open when a read-only open fails."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from archiver.errors import DatabaseError
from archiver.store import db
from tests.conftest import postgres_admin_url


def test_sqlite_archives_use_wal_a_busy_timeout_and_normal_sync(tmp_path: Path) -> None:
    # WAL lets `status` read while a cycle writes; the driver's timeout rides out another writer.
    engine = db.make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_connection_the_server_dropped_is_replaced_not_reported(postgres_url: str) -> None:
    # What a PostgreSQL restart or an idle timeout does to the pool between two cycles.
    engine = db.make_engine(postgres_url)
    admin = sa.create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with admin.connect() as conn:
            # With a timeout (ms), the server answers once the backend has really gone.
            gone = conn.execute(
                sa.text("SELECT pg_terminate_backend(:pid, 60000)"), {"pid": pid}
            ).scalar()
            assert gone
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
    finally:
        engine.dispose()
        admin.dispose()


def test_an_unreachable_archive_is_named_with_the_drivers_own_words() -> None:
    url = "sqlite:////no/such/dir/a.db"
    with pytest.raises(DatabaseError) as raised:
        db.upgrade(db.make_engine(url))
    assert str(raised.value) == (
        f"cannot reach the database {url} (ARCHIVER_DATABASE_URL): unable to open database file"
    )


def test_a_read_only_open_of_an_unreachable_server_says_so() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    with pytest.raises(DatabaseError) as raised:
        db.open_readonly(url)
    assert str(raised.value).startswith(
        f"cannot reach the database {url} (ARCHIVER_DATABASE_URL): "
    )


@pytest.mark.postgres
def test_a_driver_error_on_the_raw_connection_is_a_database_error(postgres_url: str) -> None:
    # The bulk COPY path talks to psycopg directly, outside SQLAlchemy's error wrapping.
    engine = db.make_engine(postgres_url)

    def query_a_missing_table() -> None:
        with db.transaction(engine) as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cursor:
                cursor.execute("SELECT * FROM no_such_table")

    try:
        with pytest.raises(DatabaseError, match=r"^database error: "):
            query_a_missing_table()
    finally:
        engine.dispose()


def _open_handles(path: Path) -> int:
    target = str(path.resolve())
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            continue
    return count


def test_a_failed_read_only_open_leaves_no_file_open(tmp_path: Path) -> None:
    # A health check runs every few seconds for months: each refusal must close its file.
    not_archive = tmp_path / "text.db"
    not_archive.write_text("not a database, just text\n" * 100)
    no_tables = tmp_path / "empty.db"
    sqlite3.connect(no_tables).execute("CREATE TABLE t (x)").connection.close()
    for path, phrase in ((not_archive, "cannot read the archive"), (no_tables, "no archive")):
        with pytest.raises(DatabaseError, match=phrase) as raised:
            db.open_readonly(f"sqlite:///{path}")
        # The traceback keeps the failed engine alive: only dispose() has closed its file.
        assert raised.traceback
        assert _open_handles(path) == 0, path
