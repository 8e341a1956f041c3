"""PostgreSQL `status`: only a lock on this archive's database is its service (issue #25); a failed
ask for the advisory lock leaks no connection."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from archiver.service.lock import AdvisoryLock
from archiver.store import db
from tests.conftest import postgres_admin_url
from tests.processes import Ran

pytestmark = pytest.mark.postgres


@pytest.fixture
def other_database(postgres_url: str) -> Iterator[str]:
    """A second, empty database on the same server as the session's archive."""
    admin_url = sa.make_url(postgres_admin_url())
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"archiver_other_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _service_line(cli: Callable[..., Ran], tmp_path: Path, url: str) -> str:
    result = cli(["status"], tmp_path, ARCHIVER_DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stdout.splitlines() if line.startswith("service:"))


def test_a_lock_on_another_database_of_the_server_is_not_this_archives_service(
    postgres_url: str, other_database: str, tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    elsewhere = db.make_engine(other_database)
    here = db.make_engine(postgres_url)
    try:
        theirs = AdvisoryLock(elsewhere)
        assert theirs.try_acquire()
        try:
            assert AdvisoryLock(here).holder() is None
            assert "no service holding the lock" in _service_line(cli, tmp_path, postgres_url)
            # Advisory locks are per database: this archive's own writer is not blocked...
            ours = AdvisoryLock(here)
            assert ours.try_acquire()
            try:
                # ...and, holding it, it is the one status shows.
                assert AdvisoryLock(here).holder() is not None
                assert "service:       active, pid" in _service_line(cli, tmp_path, postgres_url)
                assert AdvisoryLock(elsewhere).holder() is not None
            finally:
                ours.release()
        finally:
            theirs.release()
        assert AdvisoryLock(elsewhere).holder() is None
    finally:
        elsewhere.dispose()
        here.dispose()


@pytest.mark.parametrize("failure", [sa.exc.OperationalError, RuntimeError])
def test_a_failed_ask_for_the_advisory_lock_leaks_no_connection(
    postgres_url: str, failure: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    engine = db.make_engine(postgres_url)

    def refuse(conn: object, cursor: object, statement: str, *_: object) -> None:
        if "pg_try_advisory_lock" in statement:
            if failure is RuntimeError:  # not the database's: raised on, never swallowed
                raise RuntimeError("interrupted")
            raise sa.exc.OperationalError(statement, {}, Exception("server closed the connection"))

    sa.event.listen(engine, "before_cursor_execute", refuse)
    try:
        lock = AdvisoryLock(engine)
        if failure is RuntimeError:
            with pytest.raises(RuntimeError, match="interrupted"):
                lock.try_acquire()
        else:
            assert not lock.try_acquire()
            assert lock.problem is not None
            assert "server closed the connection" in lock.problem
            # The operator's line: why this instance cannot even ask (not "another is active").
            warned = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert [r.getMessage() for r in warned] == [
                f"cannot take the instance lock: {lock.problem}"
            ]
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()
