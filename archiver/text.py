"""Text from the outside world made safe to show: terminals, logs and spreadsheets."""

from __future__ import annotations

import unicodedata

# Characters that rewrite what a terminal shows: bidirectional overrides and isolates.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Spreadsheets run a cell starting with one of these as a formula (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def unsafe_character(text: str) -> str | None:
    """The first character that must not reach storage or a terminal, or None.

    Control characters (NUL included: PostgreSQL text cannot hold it), lone surrogates
    (not encodable), line and paragraph separators, and bidirectional overrides.
    """
    for char in text:
        if char in _BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            return char
    return None


def printable(text: str, limit: int = 300) -> str:
    """`text` with unsafe characters escaped (`\\x1b`, `\\u202e`), cut to `limit` characters."""
    cleaned = "".join(
        c
        if c.isprintable() and c not in _BIDI_CONTROLS
        else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )
    return cleaned if len(cleaned) <= limit else cleaned[: max(limit - 3, 0)] + "..."


def csv_cell(value: object) -> object:
    """A value safe in a spreadsheet: text starting like a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value
