"""Engines, connection checks and migrations; translates SQLAlchemy errors into DatabaseError."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from archiver.errors import DatabaseError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets `status` read while a cycle writes; the timeout rides out short write locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
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
    try:
        import psycopg
    except ImportError:  # SQLite-only installations
        pass
    else:
        errors.append(psycopg.Error)
    return tuple(errors)


DRIVER_ERRORS = _driver_errors()


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction; a database failure inside it, from any driver path, becomes a
    DatabaseError (the transaction is rolled back)."""
    try:
        with engine.begin() as conn:
            yield conn
    except DRIVER_ERRORS as exc:
        raise DatabaseError(f"database error: {_first_line(exc)}") from exc


def alembic_config(connection: Connection | None = None) -> Any:
    """Alembic's configuration pointing at `migrations/`, optionally bound to a connection."""
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise DatabaseError(
            f"migrations not found at {MIGRATIONS_DIR}: install archiver from its source tree"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to `revision` in one transaction."""
    from alembic import command

    check_connection(engine)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"migration failed: {_first_line(exc)}") from exc


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
