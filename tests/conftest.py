"""Shared fixtures: a migrated archive on real SQLite and real PostgreSQL."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import Engine

from archiver.cli import main
from archiver.observability import SecretFilter
from archiver.simulator import Simulator
from archiver.store import db
from archiver.store.tables import metadata
from tests.processes import Process, Ran
from tests.simhelpers import TOKEN

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# No deadline in property tests, whatever a test forgets to say: a 200 ms deadline failed on a
# loaded machine, and once hypothesis had saved that example, on every run in that checkout.
hypothesis_settings.register_profile("archiver", deadline=None)
hypothesis_settings.load_profile("archiver")
# The vendor's public OpenAPI document and samples, kept in the repository (see its README.md).
VENDOR = Path(__file__).resolve().parent / "vendor"


def postgres_admin_url() -> str:
    """The server tests may create throw-away databases on."""
    return os.environ.get("ARCHIVER_TEST_POSTGRES_URL", DEFAULT_PG)


def _postgres_unreachable(reason: str) -> None:
    # In CI a missing PostgreSQL is a failure: a skipped suite proves nothing.
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required in CI but unreachable: {reason}")
    pytest.skip(f"PostgreSQL unreachable: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    admin_url = sa.make_url(postgres_admin_url())
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"archiver_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _postgres_unreachable(str(exc).splitlines()[0])
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite archive migrated once per session, for tests to copy (migrating each test's
    own file took a fifth of a second, most of the fast suite's time)."""
    path = tmp_path_factory.mktemp("template") / "archive.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the main file
    engine.dispose()
    return path


@pytest.fixture
def sqlite_copy(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Engine]:
    """A migrated, empty SQLite archive of the test's own (a copy of the session's)."""
    path = tmp_path / "archive.db"
    shutil.copyfile(migrated_sqlite, path)
    engine = db.make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty archive: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "archive.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return f"sqlite:///{path}"
    url = str(request.getfixturevalue("postgres_url"))
    engine = db.make_engine(url)
    _empty(engine)
    engine.dispose()
    return url


@pytest.fixture(autouse=True)
def _no_command_logging_left() -> Iterator[None]:
    """A test that runs `cli.main` in-process installs the command's stderr handler, whose
    secret filter rewrites each record it sees; left on the root logger, it would change the
    records of every later test's `caplog`. Removed after each test (pytest's own capture
    handlers come and go by themselves), and the root's level put back."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if any(isinstance(f, SecretFilter) for f in handler.filters):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the migrated, empty archive."""
    eng = db.make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def start_service(tmp_path: Path, simulator: Simulator) -> Iterator[Callable[..., Process]]:
    """Start `archiver run` processes against the test module's `simulator`; killed at the end."""
    started: list[Process] = []

    def start(name: str, database_url: str, **env: str) -> Process:
        log = tmp_path / f"{name}.log"
        settings = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
        settings.update(
            {
                "ARCHIVER_DATABASE_URL": database_url,
                "ARCHIVER_API_BASE_URL": simulator.url,
                "ARCHIVER_API_TOKEN": TOKEN,
                "ARCHIVER_SCHEDULE_INTERVAL_SECONDS": "1",
                "ARCHIVER_STANDBY_POLL_SECONDS": "0.2",
                "ARCHIVER_BACKOFF_BASE_SECONDS": "0.01",
            }
        )
        settings.update(env)
        handle = log.open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "archiver", "run"],
            cwd=tmp_path,
            env=settings,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        process = Process(popen, log, handle)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait(10)
        process.handle.close()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """`archiver ARGS` as a user runs it in `cwd` with no ARCHIVER_* setting but `env`, run in
    this process: the same `main()` as `python -m archiver` (tests/test_cli.py checks that
    once as a real process), without half a second of interpreter start per command."""
    root = logging.getLogger()

    def levels() -> dict[str, int]:
        loggers = logging.root.manager.loggerDict.values()
        return {lg.name: lg.level for lg in loggers if isinstance(lg, logging.Logger)}

    def run(args: list[str], cwd: Path, **env: str) -> Ran:
        # main() configures logging (handlers, the token filter, quieter library loggers):
        # put all of it back, so that no later test runs under this command's logging.
        saved = (list(root.handlers), root.level, levels())
        with monkeypatch.context() as scoped:
            scoped.chdir(cwd)
            for name in [n for n in os.environ if n.startswith("ARCHIVER_")]:
                scoped.delenv(name)
            for name, value in env.items():
                scoped.setenv(name, value)
            capsys.readouterr()
            try:
                code = main(args)
            except SystemExit as exited:  # argparse's usage errors and --help
                code = exited.code if isinstance(exited.code, int) else int(exited.code is not None)
            finally:
                root.handlers[:] = saved[0]
                root.setLevel(saved[1])
                for name in levels():
                    logging.getLogger(name).setLevel(saved[2].get(name, logging.NOTSET))
            captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


def archive_at(request: pytest.FixtureRequest, tmp_path: Path, revision: str) -> Iterator[Engine]:
    """A fresh archive migrated to `revision` only, on the fixture's database (`request.param`:
    sqlite or postgresql): the body of each migration test's `at_NNNN` fixture."""
    if request.param == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        db.upgrade(engine, revision)
        yield engine
        engine.dispose()
        return
    request.getfixturevalue("postgres_url")  # skips or fails as the other PostgreSQL tests do
    admin = sa.create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"archiver_m{revision}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(postgres_admin_url()).set(database=name)
    engine = db.make_engine(url.render_as_string(hide_password=False))
    try:
        db.upgrade(engine, revision)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
