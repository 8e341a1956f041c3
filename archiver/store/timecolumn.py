"""UTC timestamps as the archive stores them: RFC 3339 text on SQLite, timestamptz elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, TypeDecorator
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

# SQLite keeps times as text: RFC 3339 UTC in whole seconds (`2026-11-17T23:00:00Z`), the form
# every CLI output prints, so that text comparisons against ISO literals copied from there (and
# date-only literals in half-open ranges, `>= '2026-11-25' AND < '2026-11-26'`) select the right
# rows. Fixed width and no fractions: `.` sorts before `Z`, so a fraction would misorder a second.
SQLITE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_SQLITE_DATETIME = sqlite.DATETIME(  # type: ignore[no-untyped-call]
    storage_format="%(year)04d-%(month)02d-%(day)02dT%(hour)02d:%(minute)02d:%(second)02dZ",
    regexp=r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)",
)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC (RFC 3339 text on SQLite) and always read back timezone-aware.

    SQLite keeps no zone, so without this a value written aware reads back naive.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLITE_DATETIME)
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Whole seconds, as stored: a bound value compares as the stored one would.
            return value.replace(tzinfo=None, microsecond=0)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
