"""The instance lock, pinned where mutation testing found it loose (issue 21 item 8): the lock
file's record, `lock_for` and `current_holder`'s choice of lock, and the PostgreSQL advisory
lock's holder, liveness and release, each through what another process or `status` can see."""

from __future__ import annotations

import gc
import json
import os
import socket
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.errors import LockError
from archiver.service.lock import (
    AdvisoryLock,
    FileLock,
    Holder,
    current_holder,
    lock_for,
    lock_path,
)
from archiver.store import db
from tests.processes import wait_for

# --- the holder's description -----------------------------------------------------------------


def test_a_holder_describes_itself_with_or_without_a_start() -> None:
    since = datetime(2026, 11, 26, 12, 0, 59, tzinfo=UTC)
    assert Holder("db1", 123, since).describe() == "pid 123 on host db1 since 2026-11-26 12:00 UTC"
    assert Holder("db1", 123, None).describe() == "pid 123 on host db1"


# --- the SQLite lock file ---------------------------------------------------------------------


def test_the_lock_file_is_one_line_an_operator_can_read(tmp_path: Path) -> None:
    path = tmp_path / "a.db.lock"
    lock = FileLock(path)
    assert lock.try_acquire()
    try:
        text = path.read_text()
        assert text.endswith("}\n")
        assert text.count("\n") == 1
        record = json.loads(text)
        assert (record["host"], record["pid"]) == (socket.gethostname(), os.getpid())
    finally:
        lock.release()


def _resource_warnings(action: Any) -> list[str]:
    """The ResourceWarnings (an open file dropped unclosed) while `action` runs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_lock_file_is_closed_whether_taken_refused_or_released(tmp_path: Path) -> None:
    path = tmp_path / "a.db.lock"
    holder = FileLock(path)
    assert holder.try_acquire()
    refused = FileLock(path)
    assert _resource_warnings(lambda: refused.try_acquire()) == []
    assert _resource_warnings(holder.release) == []
    assert _resource_warnings(lambda: FileLock(path).holder()) == []


def test_a_lock_never_taken_or_given_up_is_not_held(tmp_path: Path) -> None:
    path = tmp_path / "a.db.lock"
    lock = FileLock(path)
    assert not lock.still_held()
    assert lock.try_acquire()
    assert lock.still_held()
    lock.release()
    assert not lock.still_held()
    lock.release()  # twice: nothing to give up
    again = FileLock(path)
    assert again.try_acquire()
    again.release()


# --- which lock --------------------------------------------------------------------------------


def _fake_engine(name: str, url: str) -> Engine:
    return cast(Engine, SimpleNamespace(dialect=SimpleNamespace(name=name), url=sa.make_url(url)))


def test_each_database_gets_its_own_kind_of_lock(tmp_path: Path) -> None:
    file_url = f"sqlite:///{tmp_path / 'archive.db'}"
    file_lock = lock_for(sa.create_engine(file_url))
    assert isinstance(file_lock, FileLock)
    assert file_lock.path == lock_path(str(tmp_path / "archive.db"))
    assert file_lock.describe() == f"lock file {file_lock.path}"
    pg = sa.create_engine("postgresql+psycopg://u:hunter2secret@127.0.0.1:1/x")
    advisory = lock_for(pg)
    assert isinstance(advisory, AdvisoryLock)
    # The password stays out of every log line the lock's description goes into.
    assert advisory.describe() == "advisory lock on postgresql+psycopg://u:***@127.0.0.1:1/x"
    for memory in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(LockError, match="not an in-memory database"):
            lock_for(sa.create_engine(memory))
    with pytest.raises(LockError, match="no instance lock for the mysql dialect"):
        lock_for(_fake_engine("mysql", "mysql://u@h/x"))


def test_status_reads_a_sqlite_archives_holder_from_its_lock_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    engine = sa.create_engine(url)
    try:
        assert current_holder(url, engine) is None
        lock = lock_for(engine)
        assert lock.try_acquire()
        try:
            holder = current_holder(url, engine)
            assert holder is not None
            assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
        finally:
            lock.release()
        assert current_holder("sqlite://", engine) is None  # a memory archive has no service
    finally:
        engine.dispose()


# --- the PostgreSQL advisory lock --------------------------------------------------------------


@pytest.fixture
def pg(postgres_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on the session's database: two archivers' pools, and nothing left held."""
    first, second = db.make_engine(postgres_url), db.make_engine(postgres_url)
    yield first, second
    first.dispose()
    second.dispose()


def _sessions(engine: Engine, where: str) -> list[sa.Row[Any]]:
    """This database's sessions matching `where`, seen from a connection of their own."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT pid, state, application_name FROM pg_stat_activity "
                    f"WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}"
                )
            )
        )


def _terminate_archivers(engine: Engine) -> None:
    """End the archivers' sessions, and wait until they are gone (the signal is asynchronous:
    a loaded server may still answer on them for a while)."""
    named = "application_name LIKE 'archiver %'"
    pids = [row.pid for row in _sessions(engine, named)]
    assert pids
    with engine.connect() as conn:
        for pid in pids:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    wait_for(
        lambda: not {row.pid for row in _sessions(engine, "true")} & set(pids),
        what="the terminated sessions to end",
    )


def _fail_once(engine: Engine, statement: str) -> None:
    """The next `statement` on `engine` fails as the server would, without a disconnect."""
    failed: list[bool] = []

    def refuse(conn: object, cursor: object, text: str, *_: object) -> None:
        if statement in text and not failed:
            failed.append(True)
            raise sa.exc.OperationalError(text, {}, Exception("canceling statement"))

    sa.event.listen(engine, "before_cursor_execute", refuse)


@pytest.mark.postgres
def test_a_second_archiver_on_one_database_is_refused_and_leaks_nothing(
    pg: tuple[Engine, Engine],
) -> None:
    first, second = pg
    ours, theirs = AdvisoryLock(first), AdvisoryLock(second)
    assert not ours.still_held()
    assert ours.try_acquire()
    try:
        assert ours.still_held()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not theirs.try_acquire()
            gc.collect()
        assert caught == []
        assert second.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert theirs.problem is None  # refused, not unreachable
        assert not theirs.still_held()
    finally:
        ours.release()
    assert not ours.still_held()
    assert theirs.try_acquire()
    theirs.release()


@pytest.mark.postgres
def test_the_holder_is_the_archivers_process_and_the_session_idles_between_checks(
    pg: tuple[Engine, Engine],
) -> None:
    first, second = pg
    lock = AdvisoryLock(first)
    before = int(datetime.now(UTC).timestamp())
    assert lock.try_acquire()
    try:
        holder = AdvisoryLock(second).holder()
        assert holder is not None
        assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
        assert holder.since is not None
        assert before <= holder.since.timestamp() <= datetime.now(UTC).timestamp()
        # Between checks the lock's session is idle, not idle in a transaction (a server's
        # idle_in_transaction_session_timeout would end it, and the lock with it).
        [session] = _sessions(second, "application_name LIKE 'archiver %'")
        assert session.state == "idle"
        assert lock.still_held()
        [session] = _sessions(second, "application_name LIKE 'archiver %'")
        assert session.state == "idle"
    finally:
        lock.release()


@pytest.mark.postgres
def test_a_released_lock_leaves_no_session_named_for_the_archiver(
    pg: tuple[Engine, Engine],
) -> None:
    first, second = pg
    lock = AdvisoryLock(first)
    assert lock.try_acquire()
    assert _sessions(second, "application_name LIKE 'archiver %'")
    lock.release()
    assert first.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert first.pool.checkedin() == 1  # type: ignore[attr-defined]
    # The pooled connection is kept, but no longer says it is the archiver.
    assert _sessions(second, "application_name LIKE 'archiver %'") == []
    assert AdvisoryLock(second).holder() is None
    lock.release()  # twice: nothing to give up


@pytest.mark.postgres
def test_another_client_holding_the_key_is_shown_as_its_session(
    pg: tuple[Engine, Engine], postgres_url: str
) -> None:
    first, second = pg
    for label in ("psql", "report 12 34 host"):
        other = sa.create_engine(postgres_url, connect_args={"application_name": label})
        try:
            with other.connect() as conn:
                assert conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:key)"),
                    {"key": int.from_bytes(b"archiver", "big") - (1 << 63)},
                ).scalar()
                pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                started = conn.execute(
                    sa.text("SELECT backend_start FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid},
                ).scalar()
                holder = AdvisoryLock(second).holder()
                # The client address as PostgreSQL writes an inet (`127.0.0.1/32`).
                assert holder == Holder(host="127.0.0.1/32", pid=pid, since=started)
                assert not AdvisoryLock(first).try_acquire()
        finally:
            other.dispose()
    assert AdvisoryLock(second).holder() is None


@pytest.mark.postgres
def test_a_lock_whose_session_ended_is_lost_and_its_connection_given_back(
    pg: tuple[Engine, Engine],
) -> None:
    first, second = pg
    lock = AdvisoryLock(first)
    assert lock.try_acquire()
    _terminate_archivers(second)  # e.g. PostgreSQL restarted
    assert not lock.still_held()
    assert first.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert not lock.still_held()
    rival = AdvisoryLock(second)
    assert rival.try_acquire()
    rival.release()


@pytest.mark.postgres
def test_a_failed_liveness_check_gives_the_lock_up_on_the_server(
    pg: tuple[Engine, Engine],
) -> None:
    first, second = pg
    lock = AdvisoryLock(first)
    assert lock.try_acquire()
    _fail_once(first, "SELECT 1")  # an error that is not a disconnect
    assert not lock.still_held()
    assert first.pool.checkedout() == 0  # type: ignore[attr-defined]
    # The session is ended, not pooled with the lock still on it: another archiver takes it.
    rival = AdvisoryLock(second)
    assert rival.try_acquire()
    rival.release()


@pytest.mark.postgres
def test_a_failed_release_gives_the_lock_up_on_the_server(pg: tuple[Engine, Engine]) -> None:
    first, second = pg
    lock = AdvisoryLock(first)
    assert lock.try_acquire()
    _fail_once(first, "pg_advisory_unlock")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lock.release()
        gc.collect()
    assert caught == []
    assert first.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert not lock.still_held()
    rival = AdvisoryLock(second)
    assert rival.try_acquire()
    rival.release()


@pytest.mark.postgres
def test_status_reads_a_postgresql_archives_holder_from_the_server(
    pg: tuple[Engine, Engine], postgres_url: str
) -> None:
    first, second = pg
    assert current_holder(postgres_url, second) is None
    lock = AdvisoryLock(first)
    assert lock.try_acquire()
    try:
        holder = current_holder(postgres_url, second)
        assert holder is not None
        assert holder.pid == os.getpid()
    finally:
        lock.release()
