"""Engines, connection checks and migrations; translates SQLAlchemy errors into DatabaseError."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from archiver.errors import DatabaseError
from archiver.store import revisions
from archiver.store.revisions import migrations_dir

# pg_advisory_xact_lock key serialising migrations: "archmigr" as a signed 64-bit integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"archmigr", "big") - (1 << 63)


_SECRET_QUERY_KEYS = ("password", "sslpassword", "passfile")


def safe_url(url: str) -> str:
    """The URL with any password masked (in the user part or the query), for messages."""
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        return "<unparseable database URL>"
    hidden = {
        key: "***" if key.lower() in _SECRET_QUERY_KEYS else value
        for key, value in parsed.query.items()
    }
    return parsed.set(query=hidden).render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets `status` read while a cycle writes (the busy timeout that rides out another
    # writer's short lock is the driver's own `timeout`, given in make_engine).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; nothing is connected yet."""
    try:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise DatabaseError(f"cannot use database URL {safe_url(url)}: {exc}") from exc


def check_connection(engine: Engine) -> None:
    """Connect once, or raise one clear DatabaseError line."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot reach the database {safe_url(str(engine.url))} "
            f"(ARCHIVER_DATABASE_URL): {_first_line(exc)}"
        ) from exc


def _driver_errors() -> tuple[type[BaseException], ...]:
    # What a driver raises outside SQLAlchemy's wrapping: psycopg on the raw COPY path,
    # sqlite3 binding an integer beyond 64 bits (OverflowError), text it cannot encode.
    errors: list[type[BaseException]] = [
        SQLAlchemyError,
        sqlite3.Error,
        OverflowError,
        UnicodeError,
    ]
    # psycopg's, once loaded (a PostgreSQL engine loads it): a process that never loaded it
    # cannot be handed its errors, and a command on SQLite need not pay for its import.
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        errors.append(psycopg.Error)
    return tuple(errors)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction; a database failure inside it, from any driver path, becomes a
    DatabaseError (the transaction is rolled back)."""
    try:
        with engine.begin() as conn:
            yield conn
    except _driver_errors() as exc:
        raise DatabaseError(f"database error: {_first_line(exc)}") from exc


def alembic_config(connection: Connection | None = None) -> Any:
    """Alembic's configuration pointing at the migrations, optionally bound to a connection."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this archiver knows."""
    return revisions.head()


def _known_revisions() -> set[str]:
    return set(revisions.shipped())


def _newer_than_us(current: str) -> DatabaseError:
    return DatabaseError(
        f"the archive is at schema revision {current}, newer than this archiver knows "
        f"(latest {head_revision()}): upgrade archiver"
    )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to `revision` in one transaction, one process at a time."""
    from alembic import command
    from alembic.util import CommandError

    check_connection(engine)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two archivers starting on a new database would race to create the same types.
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            current = _current(conn)
            if current is not None and current not in _known_revisions():
                raise _newer_than_us(current)
            command.upgrade(alembic_config(conn), revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"migration failed: {_first_line(exc)}") from exc
    except CommandError as exc:
        raise DatabaseError(f"migration failed: {str(exc).splitlines()[0]}") from exc


def _current(conn: Connection) -> str | None:
    return revisions.current(conn)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as conn:
        return _current(conn)


@dataclass(frozen=True)
class SqliteTarget:
    """What a SQLite URL opens, as the driver reads it: a file, or (`path` None) a database
    in memory that vanishes on exit; `uri`: named by a driver-level `file:` URI."""

    path: Path | None
    uri: bool = False


_TRUE = ("true", "yes", "on", "y", "t", "1")  # what SQLAlchemy's driver takes for uri=true


def sqlite_target(url: str | sa.URL) -> SqliteTarget | None:
    """The one reading of a SQLite URL (None for any other database), for every caller:
    the writer, the read-only opener, the instance lock, the export's guard of the file.

    As the pysqlite driver reads it: without `uri=true` the database is a plain file name
    (`sqlite://` and `:memory:` are memory); with it, a `file:` URI whose path is the file
    and whose `mode=memory` (or path `:memory:`) is memory.
    """
    parsed = sa.make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    uri = str(parsed.query.get("uri", "")).lower() in _TRUE
    if uri and database.startswith("file:"):
        path = unquote(urlsplit(database).path)
        memory = parsed.query.get("mode") == "memory" or path in ("", ":memory:")
        return SqliteTarget(None if memory else Path(path), uri=True)
    return SqliteTarget(None if database in ("", ":memory:") else Path(database), uri=uri)


def is_memory_sqlite(url: str) -> bool:
    """True for `sqlite://`, `sqlite:///:memory:` and memory URIs: an archive that vanishes."""
    target = sqlite_target(url)
    return target is not None and target.path is None


def open_readonly(url: str) -> Engine:
    """An engine that can only read an existing archive at the current schema revision.

    Read-only commands (status, health, report, export) use this: a mistyped path must not
    create an empty archive, and a health check must never write or migrate.
    """
    try:
        parsed = sa.make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"cannot use database URL {safe_url(url)}: {exc}") from exc
    sqlite = sqlite_target(parsed)
    if sqlite is not None:
        path = None if sqlite.uri else sqlite.path
        if path is None:
            raise DatabaseError(
                "ARCHIVER_DATABASE_URL names an in-memory or URI-style SQLite database; "
                "name the archive's file, such as sqlite:///archiver.db"
            )
        if not path.exists():
            raise DatabaseError(
                f"no archive at {path}; run `archiver db upgrade` or `archiver backfill` first"
            )
        if not path.is_file():
            raise DatabaseError(f"{path} is not a file: ARCHIVER_DATABASE_URL names the archive")
        target = f"file:{quote(str(path.resolve()))}?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(target, uri=True, timeout=30, check_same_thread=False)

        engine = sa.create_engine("sqlite://", creator=connect)
        where = str(path)
    else:
        engine = make_engine(url)
        # The server refuses any write in these sessions (set per connection, so that the
        # URL's own `options` and poolers that refuse startup parameters keep working).
        event.listen(engine, "connect", _read_only_session)
        where = safe_url(url)
    try:
        check_connection(engine)
        _check_schema(engine, where)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot read the archive at {where}: {_first_line(exc)}") from exc
    except BaseException:
        engine.dispose()
        raise
    return engine


def _read_only_session(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    dbapi_connection.commit()


def _check_schema(engine: Engine, where: str) -> None:
    current = current_revision(engine)
    if current is None:
        raise DatabaseError(
            f"no archive tables in {where}; run `archiver db upgrade` or `archiver backfill` first"
        )
    head = head_revision()
    if current == head:
        return
    if current not in _known_revisions():
        raise _newer_than_us(current)
    raise DatabaseError(
        f"the archive's schema (revision {current}) is behind this archiver ({head}): "
        "run `archiver db upgrade`"
    )
