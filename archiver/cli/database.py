"""`archiver db upgrade`: create or migrate the archive's tables."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from archiver.cli._output import out
from archiver.cli._parsing import Commands, subcommands

if TYPE_CHECKING:
    from archiver.config import Settings


def add_db(commands: Commands) -> None:
    """The `db` command group."""
    dbp = commands.add_parser(
        "db", help="database maintenance", description="Database maintenance."
    )
    up = subcommands(dbp).add_parser(
        "upgrade",
        help="apply the schema migrations",
        description="Create or migrate the archive's tables (the service also does this at start).",
    )
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(handler=cmd_db_upgrade)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.cli._archive import writable_url
    from archiver.store import db

    engine = db.make_engine(writable_url(settings))
    try:
        db.upgrade(engine, args.revision)
        out(
            f"database {db.safe_url(settings.database_url)} is at revision "
            f"{db.current_revision(engine)}"
        )
    finally:
        engine.dispose()
    return 0
