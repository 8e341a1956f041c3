"""Publish tokens as a stream source: exact names are tracked, regex patterns are kept."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.cycle.streams import Added, add_streams
from archiver.store.tables import token_patterns
from archiver.vocabulary import StreamSource

if TYPE_CHECKING:
    from archiver.api.listings import PublishToken

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenPattern:
    """A regex a publish token allows, with the token's label."""

    token_id: int
    label: str | None
    pattern: str
    is_active: bool | None

    def compiled(self) -> re.Pattern[str] | None:
        """The pattern, or None when Python's regex engine cannot read it."""
        return _compile(self.pattern)

    def describe(self) -> str:
        """`label (pattern)`, for listings."""
        return f"{self.label or f'token {self.token_id}'} ({self.pattern})"


def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError):
        return None


def save_tokens(*, conn: Connection, tokens: Sequence[PublishToken], now: datetime) -> Added:
    """Track every exact name of `tokens` (source `token`); replace the stored patterns."""
    exact = [s.streamName for t in tokens for s in t.streams or () if not s.isRegex]
    patterns = {
        (t.id, s.streamName): TokenPattern(t.id, t.label, s.streamName, t.isActive)
        for t in tokens
        for s in t.streams or ()
        if s.isRegex
    }
    conn.execute(sa.delete(token_patterns))
    if patterns:
        conn.execute(
            sa.insert(token_patterns),
            [
                {
                    "token_id": p.token_id,
                    "pattern": p.pattern[:512],
                    "label": None if p.label is None else p.label[:512],
                    "is_active": p.is_active,
                    "read_at": now,
                }
                for p in patterns.values()
            ],
        )
    for p in patterns.values():
        if p.compiled() is None:
            log.warning(
                "publish token %s: pattern %r is not a regex we can read", p.token_id, p.pattern
            )
    return add_streams(conn=conn, names=exact, source=StreamSource.TOKEN, now=now)


def load_patterns(conn: Connection) -> list[TokenPattern]:
    """The stored token patterns, by token and pattern."""
    rows = conn.execute(
        sa.select(token_patterns).order_by(token_patterns.c.token_id, token_patterns.c.pattern)
    )
    return [TokenPattern(r.token_id, r.label, r.pattern, r.is_active) for r in rows]


def matching(name: str, patterns: Iterable[TokenPattern]) -> list[TokenPattern]:
    """The patterns `name` matches in full (the vendor matches the whole name)."""
    found = []
    for pattern in patterns:
        compiled = pattern.compiled()
        if compiled is not None and compiled.fullmatch(name):
            found.append(pattern)
    return found
