"""The `archiver` command line: parses arguments, runs a command, turns errors into one line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from archiver import __version__
from archiver.config import Settings, get_settings
from archiver.errors import ArchiverError
from archiver.observability import setup_logging
from archiver.store import db

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Settings], int]


def out(text: str = "") -> None:
    """Write one line of command output to stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine, args.revision)
        out(
            f"database {db.safe_url(settings.database_url)} is at revision "
            f"{db.current_revision(engine)}"
        )
    finally:
        engine.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every command and option; `--help` works on each."""
    parser = argparse.ArgumentParser(
        prog="archiver",
        description="Keep a permanent SQL archive of Real-time Streaming (Millicast) analytics.",
        epilog="Settings come from ARCHIVER_* environment variables or .env; "
        "see config/archiver.env.example.",
    )
    parser.add_argument("--version", action="version", version=f"archiver {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    dbp = commands.add_parser(
        "db", help="database maintenance", description="Database maintenance."
    )
    db_commands = dbp.add_subparsers(title="commands", metavar="COMMAND", required=True)
    up = db_commands.add_parser(
        "upgrade",
        help="apply the schema migrations",
        description="Create or migrate the archive's tables (the service also does this at start).",
    )
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(handler=cmd_db_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `archiver` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = get_settings()
        setup_logging(settings)
        return handler(args, settings)
    except ArchiverError as exc:
        sys.stderr.write(f"archiver: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("archiver: interrupted\n")
        return 130
