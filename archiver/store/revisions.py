"""The schema revisions this archiver ships and the one a database is at, read without Alembic.

Loading Alembic (and the Mako and Pygments it brings) took a third of a read-only command's
start; these answers are the same as Alembic's (tests/test_migrations.py compares them).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.errors import DatabaseError

VERSION_TABLE = "alembic_version"


def migrations_dir() -> Path:
    """Where the Alembic environment is: `migrations/` in the source tree, shipped as a package."""
    return Path(str(resources.files("archiver.migrations")))


# `revision: str = "0007"` on one line, as every script Alembic writes has it.
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=(.*)$", re.MULTILINE)


def _literals(path: Path) -> dict[str, object]:
    """A migration script's `revision` and `down_revision` (the module-level literals)."""
    text = path.read_text(encoding="utf-8")
    try:
        # A look at two lines, not a parse of the whole script (its SQL is most of it).
        return {name: ast.literal_eval(value.strip()) for name, value in _ASSIGNMENT.findall(text)}
    except (ValueError, SyntaxError):
        pass  # a value spread over lines (a merge's tuple): the script's own syntax tree
    found: dict[str, object] = {}
    for node in ast.parse(text).body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            found[target.id] = ast.literal_eval(value)
    return found


@cache
def shipped() -> dict[str, tuple[str, ...]]:
    """Every revision of the migrations folder, with the revisions it follows."""
    revisions: dict[str, tuple[str, ...]] = {}
    for path in sorted((migrations_dir() / "versions").glob("*.py")):
        values = _literals(path)
        revision, down = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str):
            continue  # `__init__.py`, not a migration
        if isinstance(down, str):
            revisions[revision] = (down,)
        elif isinstance(down, tuple | list):  # a merge of branches
            revisions[revision] = tuple(str(d) for d in down)
        else:
            revisions[revision] = ()
    return revisions


def head() -> str:
    """The newest revision: the one no other follows."""
    revisions = shipped()
    followed = {down for downs in revisions.values() for down in downs}
    heads = sorted(set(revisions) - followed)
    if len(heads) != 1:  # pragma: no cover - a packaging mistake, not a user's
        raise DatabaseError(
            f"this archiver ships {len(heads)} schema heads ({', '.join(heads)}): reinstall it"
        )
    return heads[0]


def current(conn: Connection) -> str | None:
    """The revision the database is at, or None before the first migration."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise DatabaseError(f"the archive's {VERSION_TABLE} table holds {len(rows)} revisions")
    return str(rows[0]) if rows else None
