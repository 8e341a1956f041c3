"""The stream registry: names from settings, the CLI and discovery; refusals and dormancy."""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.errors import InputError
from archiver.rules.plan import StreamEntry
from archiver.store.tables import sync_state, tracked_streams
from archiver.text import printable, unsafe_character
from archiver.vocabulary import StreamSource, StreamStatus, refusal_reason, storable

if TYPE_CHECKING:
    from archiver.api.client import AnalyticsClient

log = logging.getLogger(__name__)


@dataclass
class Added:
    """What adding names did."""

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    woken: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def add_streams(
    *,
    conn: Connection,
    names: Iterable[str],
    source: StreamSource,
    now: datetime,
    seen: bool = False,
) -> Added:
    """Track `names`; refused names are kept as `refused` with the reason, never sent.

    `seen` marks the names as seen live now (discovery), which wakes dormant streams.
    """
    result = Added()
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not wanted:
        return result
    # Only storable names reach the database, even in a lookup (PostgreSQL refuses NUL).
    lookup = [n for n in wanted if storable(n)]
    known = {
        row.stream_name: row
        for row in conn.execute(
            sa.select(tracked_streams.c.stream_name, tracked_streams.c.status).where(
                tracked_streams.c.stream_name.in_(lookup)
            )
        )
    }
    for name in wanted:
        reason = refusal_reason(name)
        if reason is not None:
            result.refused[name] = reason
            if not storable(name):
                # Reported (escaped, bounded) by the caller; never stored nor sent.
                log.warning("stream name %s refused: %s", printable(name, 140), reason)
                continue
        row = known.get(name)
        if row is None:
            conn.execute(
                sa.insert(tracked_streams).values(
                    stream_name=name,
                    source=source,
                    status=StreamStatus.REFUSED if reason else StreamStatus.ACTIVE,
                    added_at=now,
                    last_seen_at=now if seen and not reason else None,
                    note=reason,
                )
            )
            if not reason:
                result.added.append(name)
            continue
        result.existing.append(name)
        if seen and not reason:
            conn.execute(
                sa.update(tracked_streams)
                .where(tracked_streams.c.stream_name == name)
                .values(status=StreamStatus.ACTIVE, last_seen_at=now)
            )
            if row.status == StreamStatus.DORMANT:
                result.woken.append(name)
    return result


def remove_streams(*, conn: Connection, names: Iterable[str]) -> list[str]:
    """Stop tracking `names` (their archived rows stay); returns the names that were tracked."""
    # A name with a control character was never stored (and PostgreSQL refuses NUL).
    wanted = [n for n in dict.fromkeys(names) if unsafe_character(n) is None]
    present = list(
        conn.execute(
            sa.select(tracked_streams.c.stream_name).where(
                tracked_streams.c.stream_name.in_(wanted)
            )
        ).scalars()
    )
    conn.execute(sa.delete(tracked_streams).where(tracked_streams.c.stream_name.in_(present)))
    return present


_SEEN = (
    sa.update(tracked_streams)
    .where(
        tracked_streams.c.stream_name == sa.bindparam("k_name"),
        tracked_streams.c.status != StreamStatus.REFUSED,
        sa.or_(
            tracked_streams.c.last_seen_at.is_(None),
            tracked_streams.c.last_seen_at
            < sa.bindparam("k_moment", type_=tracked_streams.c.last_seen_at.type),
        ),
    )
    .values(
        last_seen_at=sa.bindparam("k_moment", type_=tracked_streams.c.last_seen_at.type),
        status=StreamStatus.ACTIVE,
    )
)


def mark_seen(*, conn: Connection, last_seen: dict[str, datetime]) -> None:
    """Record traffic seen in archived buckets; wakes dormant streams (one statement, a
    parameter set per stream)."""
    if last_seen:
        conn.execute(_SEEN, [{"k_name": n, "k_moment": m} for n, m in last_seen.items()])


def update_dormancy(*, conn: Connection, now: datetime, window: timedelta) -> list[str]:
    """Active streams with no traffic (nor addition) inside the per-stream window go dormant."""
    line = now - window
    table = tracked_streams
    quiet = sa.and_(
        table.c.status == StreamStatus.ACTIVE,
        table.c.added_at < line,
        sa.or_(table.c.last_seen_at.is_(None), table.c.last_seen_at < line),
    )
    names = list(conn.execute(sa.select(table.c.stream_name).where(quiet)).scalars())
    if names:
        conn.execute(sa.update(table).where(quiet).values(status=StreamStatus.DORMANT))
    return names


def plannable(conn: Connection) -> list[StreamEntry]:
    """Tracked streams the planner may ask about (active or dormant, never refused)."""
    rows = conn.execute(
        sa.select(tracked_streams.c.stream_name, tracked_streams.c.status).where(
            tracked_streams.c.status != StreamStatus.REFUSED
        )
    )
    return [StreamEntry(name, StreamStatus(status)) for name, status in rows]


def plannable_capped(conn: Connection, max_new: int) -> tuple[list[StreamEntry], dict[str, int]]:
    """The plannable streams, at most `max_new` never-planned ones per source, oldest first.

    A stream is new while no watermark of it is stored (a cycle stores them when it plans the
    stream); the new names over the cap stay tracked and wait, counted per source, for the
    next cycles.
    """
    # One uncorrelated set of started names, built once: an EXISTS per tracked stream would
    # scan sync_state each time (its key leads with the dataset), 10,000 times at 10,000.
    started = tracked_streams.c.stream_name.in_(sa.select(sync_state.c.stream_name))
    rows = conn.execute(
        sa.select(
            tracked_streams.c.stream_name,
            tracked_streams.c.status,
            tracked_streams.c.source,
            started.label("started"),
        )
        .where(tracked_streams.c.status != StreamStatus.REFUSED)
        .order_by(tracked_streams.c.added_at, tracked_streams.c.stream_name)
    )
    entries: list[StreamEntry] = []
    taken: dict[str, int] = {}
    waiting: dict[str, int] = {}
    for name, status, source, was_started in rows:
        if not was_started:
            if taken.get(source, 0) >= max_new:
                waiting[source] = waiting.get(source, 0) + 1
                continue
            taken[source] = taken.get(source, 0) + 1
        entries.append(StreamEntry(name, StreamStatus(status)))
    return entries, waiting


def list_streams(conn: Connection) -> list[dict[str, object]]:
    """Every tracked stream, by name."""
    rows = conn.execute(sa.select(tracked_streams).order_by(tracked_streams.c.stream_name))
    return [dict(row._mapping) for row in rows]


def discover_names(client: AnalyticsClient, pattern: str | None) -> list[str]:
    """Names the monitoring endpoint lists now that pass the include pattern."""
    return [name for name in client.discover_streams() if matches(name, pattern)]


def matches(name: str, pattern: str | None) -> bool:
    """Whether a discovered name passes the optional include pattern (shell-style)."""
    return pattern is None or fnmatch.fnmatchcase(name, pattern)


# Far more than any real list (30,000 names of the vendor's longest), far less than /dev/zero.
MAX_NAMES_FILE_BYTES = 4 * 1024 * 1024
# A comment starts at `#` at the start of a line or after a space or tab; `cam#1` is a name.
_COMMENT = re.compile(r"(^|[ \t])#.*$")


def read_names_file(path: Path, limit: int = MAX_NAMES_FILE_BYTES) -> list[str]:
    """Names from a file: one a line; blank lines and `#` comments are ignored.

    At most `limit` bytes are read: a device or a runaway file ends in one clear error.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise InputError(f"cannot read {path}: larger than {limit // 1024 // 1024} MiB; split it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"cannot read {path}: not UTF-8 text") from None
    names = (_COMMENT.sub("", line).strip() for line in text.splitlines())
    return [name for name in names if name]
