"""Settings by their `ARCHIVER_*` names: a misspelt one is named, never silently ignored, and
every invalid value is reported under its name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic import ValidationError

from archiver.errors import ConfigError
from archiver.text import printable

PREFIX = "ARCHIVER_"
# Read by this project without being a setting: the test suite's PostgreSQL server.
NOT_SETTINGS = frozenset({"ARCHIVER_TEST_POSTGRES_URL"})


def _closest(name: str, known: Iterable[str]) -> str:
    """`: did you mean ARCHIVER_X?`, or where every setting is listed."""
    # Compared without the prefix every name shares, which would make any two look alike.
    rests = sorted(k.removeprefix(PREFIX) for k in known)
    matches = difflib.get_close_matches(name.removeprefix(PREFIX), rests, n=1, cutoff=0.6)
    if matches:
        return f": did you mean {PREFIX}{matches[0]}?"
    return " (config/archiver.env.example lists every setting)"


def unknown(names: Iterable[str], known: frozenset[str]) -> list[tuple[str, str]]:
    """Each `ARCHIVER_*` name that is not a setting, with the hint naming the closest one.

    Names are compared in capitals, as the settings read them (`archiver_now` is ARCHIVER_NOW).
    """
    found: list[tuple[str, str]] = []
    for name in names:
        upper = name.upper()
        if upper.startswith(PREFIX) and upper not in known and upper not in NOT_SETTINGS:
            found.append((printable(name, 80), _closest(upper, known)))
    return found


def dotenv_names(path: Path) -> list[str]:
    """The names `.env` at `path` sets, in file order; none when there is no such file."""
    if not path.is_file():
        return []
    try:
        return list(dotenv_values(path, encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise ConfigError(f"cannot read {path}: {reason}") from None


def check(
    fields: Iterable[str], environ: Mapping[str, str], env_file: Path
) -> tuple[list[str], list[str]]:
    """(errors, warnings): unknown names in `.env` are errors, because only the archiver reads
    that file; in the environment, which other programs share, they are warnings."""
    known = frozenset(PREFIX + field.upper() for field in fields)
    errors = [
        f"unknown setting {name} in {env_file}{hint}"
        for name, hint in unknown(dotenv_names(env_file), known)
    ]
    warnings = [
        f"unknown setting {name} in the environment, ignored{hint}"
        for name, hint in unknown(environ, known)
    ]
    return errors, warnings


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, each naming its `ARCHIVER_*` variable (never echoing the value)."""
    lines: list[str] = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part != "__root__"]
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if location:
            lines.append(f"invalid setting {PREFIX}{location[0].upper()}: {message}")
        else:
            lines.extend(f"invalid settings: {part}" for part in message.split("; "))
    return "\n".join(lines)
