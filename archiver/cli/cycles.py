"""`archiver sync` and `archiver backfill`: one cycle now, then exit."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING

from archiver.cli._output import ProgressLine, out, refused, say
from archiver.cli._parsing import Commands, instant, resolution_choice
from archiver.errors import InputError
from archiver.timeutil import Resolution

# The handlers import the HTTP client, the cycle, the store and the planner when they run:
# `--help` and the read-only commands, which share this parser, do not load them.
if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from archiver.config import Settings
    from archiver.cycle.report import CycleReport
    from archiver.rules.plan import Plan, Selection

NO_STREAMS = (
    "no stream is tracked, so no per-stream history is saved (account totals only): "
    "name streams (ARCHIVER_STREAMS, `archiver streams add`), let publish tokens list them "
    "(ARCHIVER_PUBLISH_TOKENS) or the vendor's feed history (ARCHIVER_FEEDS), or catch them "
    "live (discovery, feed webhooks: ARCHIVER_WEBHOOK_PORT); README: Never miss a stream"
)


def add_sync(commands: Commands) -> None:
    """The `sync` command."""
    sync = commands.add_parser(
        "sync",
        help="run one cycle, then exit (for cron)",
        description="Discover streams, fetch everything not yet final, store it, then exit. "
        "Exit code 0 when every request succeeded, 1 otherwise (the next run retries).",
    )
    sync.set_defaults(handler=cmd_sync)


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.api.client import AnalyticsClient
    from archiver.cli._archive import sole_writer
    from archiver.cycle.sync import run_cycle
    from archiver.vocabulary import RunKind

    settings.require_token()
    with (
        sole_writer(settings) as engine,
        AnalyticsClient.from_options(settings.client_options()) as client,
    ):
        report = run_cycle(engine=engine, client=client, settings=settings, kind=RunKind.SYNC)
    return _print_report(report)


def add_backfill(commands: Commands) -> None:
    """The `backfill` command."""
    back = commands.add_parser(
        "backfill",
        help="save everything the vendor still holds",
        description="Save what the vendor still holds in [--start, --end) (default: all of "
        "it). Resumable and idempotent: run it again after an interruption.",
    )
    back.add_argument("--start", type=instant("--start"), help="YYYY-MM-DD or ISO time (UTC)")
    back.add_argument("--end", type=instant("--end"), help="exclusive; default: now")
    back.add_argument(
        "--resolution",
        type=resolution_choice,
        default="all",
        help="Hour, Day, Month or all (default)",
    )
    back.add_argument("--streams", help="comma-separated names: only these streams' data")
    back.add_argument(
        "--dry-run",
        action="store_true",
        help="print the streams and requests the real backfill would make; writes nothing "
        "and asks the vendor only which streams it lists (and its clock)",
    )
    back.set_defaults(handler=cmd_backfill)


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.api.client import AnalyticsClient
    from archiver.cli._archive import sole_writer
    from archiver.cycle.report import current_time
    from archiver.cycle.streams import add_streams
    from archiver.cycle.sync import run_cycle
    from archiver.rules.plan import Selection
    from archiver.store import db
    from archiver.vocabulary import RunKind, StreamSource, check_stream_name

    start: datetime | None = args.start
    end: datetime | None = args.end
    if start is not None and end is not None and start >= end:
        raise InputError("--start must be before --end")
    resolutions = (
        None if args.resolution == "all" else frozenset({Resolution.parse(args.resolution)})
    )
    names: list[str] | None = None
    if args.streams is not None:
        names = [n.strip() for n in args.streams.split(",") if n.strip()]
        if not names:
            raise InputError("--streams needs at least one stream name")
        for name in names:
            check_stream_name(name)
    selection = Selection(
        start=start,
        end=end,
        resolutions=resolutions,
        streams=None if names is None else frozenset(names),
    )
    now = current_time(settings)
    if args.dry_run:
        return _dry_run(settings, now=now, selection=selection, names=names)
    settings.require_token()
    with sole_writer(settings) as engine:
        if names:
            with db.transaction(engine) as conn:
                add_streams(conn=conn, names=names, source=StreamSource.CLI, now=now)
        with AnalyticsClient.from_options(settings.client_options()) as client:
            report = run_cycle(
                engine=engine,
                client=client,
                settings=settings,
                kind=RunKind.BACKFILL,
                selection=selection,
                discover=names is None,
                progress=ProgressLine(),
                on_plan=_report_purged,
            )
        if not names:
            _warn_if_no_streams(engine)
    return _print_report(report)


def _dry_run(
    settings: Settings, *, now: datetime, selection: Selection, names: list[str] | None
) -> int:
    """Print what the real backfill would ask, having written nothing anywhere."""
    from archiver.cli._archive import writable_url
    from archiver.cycle.dry_run import dry_run

    writable_url(settings)  # refused as the real backfill refuses it (an in-memory archive)
    result = dry_run(settings=settings, now=now, selection=selection, names=names)
    _report_purged(result.plan)
    for problem in result.problems:
        say(f"{problem}: the real backfill goes on without the streams it would list")
    out("dry run: these requests would be made (nothing is written)")
    for line in _describe_plan(result.plan):
        out(line)
    counts = ", ".join(f"{n} {what}" for what, n in result.by_source.items())
    if result.listing_requests is None:
        out(f"streams: {len(result.streams)} ({counts}), and those the vendor would list")
        say(
            "without ARCHIVER_API_TOKEN the dry run cannot ask the vendor which streams "
            "discovery and publish tokens would find, so it cannot know them: the real backfill "
            "makes more requests than these"
        )
        if not result.streams:
            say(NO_STREAMS)
        return 0
    out(f"streams: {len(result.streams)} ({counts})")
    out(
        f"total: {result.total} requests ({result.listing_requests} before planning: stream "
        f"listings and the vendor's clock, asked by this dry run too; "
        f"{len(result.plan.requests)} for data)"
    )
    if not result.streams:
        say(NO_STREAMS)
    return 0


def _print_report(report: CycleReport) -> int:
    for name, reason in sorted(report.refused.items()):
        refused(name, reason)
    if report.ok:
        out(report.summary())
        return 0
    say(report.summary())
    return 1


def _describe_plan(plan: Plan) -> list[str]:
    from archiver.vocabulary import ApiRequest

    lines: list[str] = []
    groups: dict[tuple[str, str], list[ApiRequest]] = {}
    for planned in plan.requests:
        request = planned.request
        groups.setdefault((request.endpoint.dataset, request.resolution.value), []).append(request)
    for (dataset, resolution), requests in sorted(groups.items()):
        first = min(r.start for r in requests)
        last = max(r.stop for r in requests)
        lines.append(
            f"{dataset:<18} {resolution:<5} {len(requests):>6} requests  "
            f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC"
        )
    lines.append(f"data: {len(plan.requests)} requests")
    return lines


def _warn_if_no_streams(engine: Engine) -> None:
    """One line when the backfill has no per-stream scope: never a silent empty backfill."""
    from archiver.cycle.streams import plannable
    from archiver.store import db

    with db.transaction(engine) as conn:
        if not plannable(conn):
            say(NO_STREAMS)


def _report_purged(plan: Plan) -> None:
    for purged in plan.purged:
        say(
            f"{purged.dataset} {purged.resolution} {purged.start:%Y-%m-%d %H:%M}.."
            f"{purged.stop:%Y-%m-%d %H:%M} UTC is already purged by the vendor; "
            "saving what it still holds"
        )
