"""`archiver streams add/remove/list/import/discover`: the tracked stream names."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.cli._output import out, refused, say, table_row
from archiver.cli._parsing import Commands, subcommands
from archiver.text import printable
from archiver.timeutil import format_iso

# The handlers import the store and the HTTP client when they run: building the parser, which
# every command (and `--help`) does, loads neither.
if TYPE_CHECKING:
    from archiver.config import Settings
    from archiver.cycle.tokens import TokenPattern
    from archiver.vocabulary import StreamSource


def add_streams_commands(commands: Commands) -> None:
    """The `streams` command group."""
    streams = commands.add_parser(
        "streams",
        help="manage the tracked stream names",
        description="Manage the stream names the archiver asks the vendor about.",
    )
    stream_commands = subcommands(streams)
    add = stream_commands.add_parser("add", help="track names", description="Track stream names.")
    add.add_argument("names", nargs="+", metavar="NAME")
    add.set_defaults(handler=cmd_streams_add)

    remove = stream_commands.add_parser(
        "remove",
        help="stop tracking names",
        description="Stop tracking stream names; their archived rows stay.",
    )
    remove.add_argument("names", nargs="+", metavar="NAME")
    remove.set_defaults(handler=cmd_streams_remove)

    listing = stream_commands.add_parser(
        "list", help="show tracked names", description="Show every tracked stream."
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=cmd_streams_list)

    imp = stream_commands.add_parser(
        "import",
        help="track names from a file",
        description="Track the names in FILE (at most 4 MiB): one a line; # at the start of "
        "a line or after a space starts a comment (a # inside a name, as in cam#1, is part of "
        "it; add a name that begins with # with `streams add`).",
    )
    imp.add_argument("file", metavar="FILE")
    imp.set_defaults(handler=cmd_streams_import)

    disc = stream_commands.add_parser(
        "discover",
        help="find live streams now",
        description="Ask the monitoring endpoint for streams live within the last hour and "
        "track them (ARCHIVER_DISCOVERY_PATTERN filters them).",
    )
    disc.add_argument("--dry-run", action="store_true", help="only print the names")
    disc.set_defaults(handler=cmd_streams_discover)


def cmd_streams_add(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.vocabulary import StreamSource

    return _add(settings, args.names, source=StreamSource.CLI)


def cmd_streams_import(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.cycle.streams import read_names_file
    from archiver.vocabulary import StreamSource

    return _add(settings, read_names_file(Path(args.file)), source=StreamSource.CLI)


def _add(settings: Settings, names: list[str], *, source: StreamSource, seen: bool = False) -> int:
    """Track names and say what happened; refusals fail only names the user typed."""
    from archiver.cli._archive import archive
    from archiver.cycle.report import current_time
    from archiver.cycle.streams import add_streams
    from archiver.store import db

    with archive(settings) as engine, db.transaction(engine) as conn:
        result = add_streams(
            conn=conn, names=names, source=source, now=current_time(settings), seen=seen
        )
    verb = "discovered" if source == "discovered" else "tracking"
    for name in result.added:
        out(f"{verb} {printable(name, 140)}")
    if source == "discovered":
        out(f"{len(result.added)} new, {len(result.existing)} already tracked")
    else:
        for name in result.existing:
            out(f"already tracked: {printable(name, 140)}")
    for name, reason in result.refused.items():
        refused(name, reason)
    # Wildcard tokens create names nobody chose: refusing those is not the user's error.
    return 1 if result.refused and source != "discovered" else 0


def cmd_streams_remove(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.cli._archive import archive
    from archiver.cycle.streams import remove_streams
    from archiver.store import db

    with archive(settings) as engine, db.transaction(engine) as conn:
        removed = remove_streams(conn=conn, names=args.names)
    for name in removed:
        out(f"no longer tracking {printable(name, 140)} (its archived rows stay)")
    missing = [n for n in args.names if n not in removed]
    for name in missing:
        say(f"stream '{printable(name, 140)}' was not tracked")
    return 1 if missing else 0


def _json_time(value: object) -> str:
    # One time style in every output: the one SQLite stores and `export` writes.
    if isinstance(value, datetime):
        return format_iso(value)
    return str(value)


_MINUTE = "%Y-%m-%d %H:%M"


def cmd_streams_list(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.cli._archive import archive_readonly
    from archiver.cycle.streams import list_streams
    from archiver.cycle.tokens import load_patterns, matching
    from archiver.store import db

    with archive_readonly(settings) as engine, db.transaction(engine) as conn:
        rows = list_streams(conn)
        patterns = load_patterns(conn)
    for row in rows:
        row["token"] = ", ".join(p.describe() for p in matching(str(row["stream_name"]), patterns))
    if args.json:
        out(json.dumps(rows, default=_json_time, indent=2))
        return 0
    header = ("stream", "source", "status", "added", "last seen", "token")
    out(table_row(zip(header, ("<40", "<10", "<8", "<17", "<17", ""), strict=True)))
    for row in rows:
        seen = row["last_seen_at"]
        cells = (
            (printable(str(row["stream_name"]), 140), "<40"),
            (str(row["source"]), "<10"),
            (str(row["status"]), "<8"),
            (row["added_at"], _MINUTE),
            ("" if seen is None else format(seen, _MINUTE), "<17"),
            (row["token"], ""),
        )
        out(table_row(cells).rstrip())
    out(f"{len(rows)} streams")
    _list_token_patterns(patterns)
    return 0


def _list_token_patterns(patterns: list[TokenPattern]) -> None:
    if not patterns:
        return
    out(f"publish token patterns ({len(patterns)}):")
    for pattern in patterns:
        state = "" if pattern.is_active is not False else " (inactive)"
        unreadable = "" if pattern.compiled() is not None else " (not a readable regex)"
        out(f"  {pattern.describe()}{state}{unreadable}")


def cmd_streams_discover(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.api.client import AnalyticsClient
    from archiver.cycle.streams import discover_names
    from archiver.vocabulary import StreamSource

    settings.require_token()
    with AnalyticsClient.from_options(settings.client_options()) as client:
        found = discover_names(client, settings.discovery_pattern)
    if args.dry_run:
        for name in found:
            out(printable(name, 140))
        return 0
    return _add(settings, found, source=StreamSource.DISCOVERED, seen=True)
