"""`archiver report` and `archiver export`: what the archive holds, read without writing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.cli._output import out, say
from archiver.cli._parsing import Commands, instant
from archiver.errors import InputError

# The handlers import the store and the queries when they run: building the parser, which
# every command (and `--help`) does, loads neither SQLAlchemy nor the report's code.
if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from archiver.config import Settings
    from archiver.rules.plan import Policy

# How far back `report` reaches without --from, per --by.
_DEFAULT_SPAN = {
    "hour": timedelta(days=1),
    "day": timedelta(days=31),
    "month": timedelta(days=366),
    "stream": timedelta(days=31),
}


def add_report(commands: Commands) -> None:
    """The `report` command."""
    rep = commands.add_parser(
        "report",
        help="bytes in/out or viewers per hour, day or month",
        description="Bytes in and out (or, with --metric, the viewers) of one stream (or, "
        "without --stream, the account) per hour, day or month, from the archive.",
    )
    rep.add_argument("--stream", help="stream name (default: the whole account)")
    rep.add_argument(
        "--from",
        dest="from_",
        type=instant("--from"),
        help="first instant, UTC (default: a day, month or year before --to)",
    )
    rep.add_argument("--to", type=instant("--to"), help="exclusive end, UTC (default: now)")
    rep.add_argument(
        "--by",
        choices=("hour", "day", "month", "stream"),
        default="day",
        help="periods, or a ranking of streams by egress or --metric (default day)",
    )
    rep.add_argument(
        "--metric",
        choices=("bytes", "peak-viewers", "views-started"),
        default="bytes",
        help="bytes in/out (default); peak-viewers: peak concurrent viewers, the most watching "
        "at once at the end of any 5-minute period; views-started: views begun, summed",
    )
    rep.add_argument(
        "--top", type=int, default=10, help="with --by stream: how many streams (default 10)"
    )
    rep.add_argument(
        "--format",
        choices=("table", "csv", "json", "html"),
        default="table",
        help="html: one self-contained page of charts (account, peak viewers, top streams, "
        "countries)",
    )
    rep.add_argument("--output", help="file to write (default: stdout)")
    rep.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.cli._archive import archive_readonly, write_output
    from archiver.cycle.report import current_time
    from archiver.rules.plan import Policy
    from archiver.store import db

    now = current_time(settings)
    stop = args.to or now
    start = args.from_ or stop - _DEFAULT_SPAN[args.by]
    if start >= stop:
        raise InputError("--from must be before --to")
    _check_report_args(args)
    with archive_readonly(settings) as engine, db.transaction(engine) as conn:
        text = _usage_text(conn, args, start, stop, now, Policy.from_settings(settings))
    if args.output:
        write_output(Path(args.output), settings, lambda handle: handle.write(text + "\n"))
        say(f"wrote {args.output}")
        return 0
    out(text)
    return 0


def _check_report_args(args: argparse.Namespace) -> None:
    # Before the archive is opened: a mistake on the command line touches nothing.
    if args.top < 1:
        raise InputError("--top must be at least 1")
    if args.format == "html" and args.by == "stream":
        raise InputError("--format html charts the account: use --by hour, day or month")
    if args.format == "html" and args.stream:
        raise InputError("--format html charts the whole account: drop --stream")
    if args.format == "html" and args.metric != "bytes":
        raise InputError("--format html charts bytes and peak viewers together: drop --metric")
    if args.by == "stream" and args.stream:
        raise InputError("--by stream ranks every stream: drop --stream")


def _usage_text(
    conn: Connection,
    args: argparse.Namespace,
    start: datetime,
    stop: datetime,
    now: datetime,
    policy: Policy,
) -> str:
    from archiver.reading.report import render_periods, render_streams, top_streams, usage_report

    if args.format == "html":
        from archiver.reading.html import html_report

        return html_report(
            conn, start=start, stop=stop, by=args.by, top=args.top, now=now, policy=policy
        )
    if args.metric != "bytes":
        return _audience_text(conn, args, start, stop)
    if args.by == "stream":
        ranking, first, last = top_streams(conn, start=start, stop=stop, top=args.top)
        return render_streams(ranking, first, last, args.format)
    rows = usage_report(conn, stream=args.stream, start=start, stop=stop, by=args.by, policy=policy)
    return render_periods(rows, args.format)


def _audience_text(
    conn: Connection, args: argparse.Namespace, start: datetime, stop: datetime
) -> str:
    from archiver.reading.audience import (
        audience_report,
        render_audience,
        render_audience_streams,
        top_audience,
    )

    if args.by == "stream":
        ranking, first, last = top_audience(
            conn, start=start, stop=stop, top=args.top, metric=args.metric
        )
        return render_audience_streams(ranking, first, last, args.metric, args.format)
    rows = audience_report(
        conn, stream=args.stream, start=start, stop=stop, by=args.by, metric=args.metric
    )
    scope = f"stream {args.stream}" if args.stream else "the whole account"
    return render_audience(rows, args.metric, args.by, scope, args.format)


class _Exportable:
    """The names `export --table` takes (`archiver.reading.export.EXPORTABLE`), read when argparse
    first checks or lists them: they come from the table definitions, i.e. SQLAlchemy."""

    def __iter__(self) -> Iterator[str]:
        from archiver.reading.export import EXPORTABLE

        return iter(EXPORTABLE)

    def __contains__(self, name: object) -> bool:
        return name in tuple(self)


def add_export(commands: Commands) -> None:
    """The `export` command."""
    exp = commands.add_parser(
        "export",
        help="dump a table or view as CSV or JSON lines",
        description="Write every row of a table or view to stdout or --output.",
    )
    exp.add_argument(
        "--table",
        required=True,
        choices=_Exportable(),
        metavar="TABLE",
        help="one of: %(choices)s",
    )
    exp.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    exp.add_argument("--output", help="file to write (default: stdout)")
    exp.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    # Looked up when the command runs (a test replaces write_export in archiver.reading.export).
    from archiver.cli._archive import archive_readonly, write_output
    from archiver.reading.export import export_rows, write_export
    from archiver.store import db

    with archive_readonly(settings) as engine, db.transaction(engine) as conn:
        rows = export_rows(conn, args.table)
        if args.output:
            count = write_output(
                Path(args.output), settings, lambda handle: write_export(rows, args.format, handle)
            )
            say(f"wrote {count} rows to {args.output}")
        else:
            write_export(rows, args.format, sys.stdout)
    return 0
