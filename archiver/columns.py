"""The columns a dataset declares: their kinds, and the ones every table shares."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """A column's type in the archive (store/tables.py maps each to SQL)."""

    COUNT = "count"  # a vendor int64 metric: BIGINT
    INT = "int"  # a GraphQL `Int` (32 bits): INTEGER
    CODE = "code"  # short text the vendor names a part by (a country, a tracking ID)
    TIME = "time"  # a UTC time (RFC 3339 text on SQLite)
    FLAG = "flag"  # true or false: BOOLEAN


@dataclass(frozen=True)
class Column:
    """One column of a dataset's table."""

    name: str
    kind: Kind = Kind.COUNT
    key: bool = False  # part of the primary key (a country, a tracking ID)
    nullable: bool = False  # an optional breakdown the vendor may leave out
    length: int = 0  # CODE columns: the longest value kept


# The bucket key and bookkeeping every table shares: stream names as the registry stores them.
STREAM = Column("stream_name", Kind.CODE, key=True, length=128)
PERIOD_START = Column("period_start", Kind.TIME, key=True)
FETCHED_AT = Column("fetched_at", Kind.TIME)
IS_FINAL = Column("is_final", Kind.FLAG)


def counts(names: str, kind: Kind = Kind.COUNT, *, nullable: bool = False) -> tuple[Column, ...]:
    """A column of `kind` per name (space-separated)."""
    return tuple(Column(name, kind, nullable=nullable) for name in names.split())
