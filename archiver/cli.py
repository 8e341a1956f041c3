"""The `archiver` command line: parses arguments, runs a command, turns errors into one line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from sqlalchemy.engine import Engine

from archiver import __version__
from archiver.api.client import AnalyticsClient
from archiver.api.endpoints import ApiRequest, check_stream_name, refusal_reason
from archiver.config import Settings, get_settings
from archiver.errors import ArchiverError, InputError
from archiver.observability import setup_logging
from archiver.plan import Plan, Policy, Selection, StreamEntry
from archiver.report import EXPORTABLE, export_rows, render, usage_report, write_export
from archiver.status import Status, read_status
from archiver.store import db
from archiver.streams import (
    add_streams,
    discover_names,
    list_streams,
    read_names_file,
    remove_streams,
)
from archiver.sync import CycleReport, current_time, plan_cycle, run_cycle
from archiver.text import printable
from archiver.timeutil import Resolution, parse_instant

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Settings], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (plus where to find help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


@contextmanager
def archive(settings: Settings) -> Iterator[Engine]:
    """The migrated archive the settings name; one clear error if it cannot be reached."""
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _print_report(report: CycleReport) -> int:
    for name, reason in sorted(report.refused.items()):
        sys.stderr.write(f"archiver: stream '{printable(name, 140)}' refused: {reason}\n")
    if report.ok:
        out(report.summary())
        return 0
    sys.stderr.write(f"archiver: {report.summary()}\n")
    return 1


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_token()
    with archive(settings) as engine, AnalyticsClient.from_settings(settings) as client:
        report = run_cycle(engine=engine, client=client, settings=settings, kind="sync")
    return _print_report(report)


class _ProgressLine:
    """Requests done of total, rows, rate and ETA on one refreshed terminal line."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.enabled = sys.stderr.isatty()

    def __call__(self, report: CycleReport) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = report.requests / elapsed
        left = (report.planned - report.requests) / rate if rate else 0.0
        sys.stderr.write(
            f"\r{report.requests}/{report.planned} requests, {report.rows} rows, "
            f"{rate:.1f} req/s, ETA {int(left) // 60}:{int(left) % 60:02d}   "
        )
        if report.requests == report.planned:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _describe_plan(plan: Plan) -> list[str]:
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
    lines.append(f"total: {len(plan.requests)} requests")
    return lines


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
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
    with archive(settings) as engine:
        if args.dry_run:
            extra = [
                StreamEntry(n, "active")
                for n in [*settings.streams, *(names or [])]
                if refusal_reason(n) is None
            ]
            plan = plan_cycle(
                engine=engine, settings=settings, now=now, selection=selection, extra_streams=extra
            )
            _report_purged(plan)
            out("dry run: these requests would be made (nothing is fetched or written)")
            for line in _describe_plan(plan):
                out(line)
            return 0
        settings.require_token()
        if names:
            with db.transaction(engine) as conn:
                add_streams(conn=conn, names=names, source="cli", now=now)
        with AnalyticsClient.from_settings(settings) as client:
            report = run_cycle(
                engine=engine,
                client=client,
                settings=settings,
                kind="backfill",
                selection=selection,
                discover=names is None,
                progress=_ProgressLine(),
                on_plan=_report_purged,
            )
    return _print_report(report)


def _report_purged(plan: Plan) -> None:
    for purged in plan.purged:
        sys.stderr.write(
            f"archiver: {purged.dataset} {purged.resolution} {purged.start:%Y-%m-%d %H:%M}.."
            f"{purged.stop:%Y-%m-%d %H:%M} UTC is already purged by the vendor; "
            "saving what it still holds\n"
        )


def cmd_streams_add(args: argparse.Namespace, settings: Settings) -> int:
    return _add(settings, args.names, source="cli")


def cmd_streams_import(args: argparse.Namespace, settings: Settings) -> int:
    return _add(settings, read_names_file(Path(args.file)), source="cli")


def _add(settings: Settings, names: list[str], *, source: str, seen: bool = False) -> int:
    """Track names and say what happened; refusals fail only names the user typed."""
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
        sys.stderr.write(f"archiver: stream '{printable(name, 140)}' refused: {reason}\n")
    # Wildcard tokens create names nobody chose: refusing those is not the user's error.
    return 1 if result.refused and source != "discovered" else 0


def cmd_streams_remove(args: argparse.Namespace, settings: Settings) -> int:
    with archive(settings) as engine, db.transaction(engine) as conn:
        removed = remove_streams(conn=conn, names=args.names)
    for name in removed:
        out(f"no longer tracking {printable(name, 140)} (its archived rows stay)")
    missing = [n for n in args.names if n not in removed]
    for name in missing:
        sys.stderr.write(f"archiver: stream '{printable(name, 140)}' was not tracked\n")
    return 1 if missing else 0


def cmd_streams_list(args: argparse.Namespace, settings: Settings) -> int:
    with archive(settings) as engine, db.transaction(engine) as conn:
        rows = list_streams(conn)
    if args.json:
        out(json.dumps(rows, default=str, indent=2))
        return 0
    out(f"{'stream':<40} {'source':<10} {'status':<8} {'added':<17} last seen")
    for row in rows:
        seen = row["last_seen_at"]
        added = row["added_at"]
        name = printable(str(row["stream_name"]), 140)
        out(
            f"{name:<40} {row['source']!s:<10} {row['status']!s:<8} "
            f"{added:%Y-%m-%d %H:%M} {'' if seen is None else format(seen, '%Y-%m-%d %H:%M')}"
        )
    out(f"{len(rows)} streams")
    return 0


def cmd_streams_discover(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_token()
    with AnalyticsClient.from_settings(settings) as client:
        found = discover_names(client, settings.discovery_pattern)
    if args.dry_run:
        for name in found:
            out(printable(name, 140))
        return 0
    return _add(settings, found, source="discovered", seen=True)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.service.runner import Service

    settings.require_token()
    engine = db.make_engine(settings.database_url)
    try:
        service = Service(settings, engine)
        service.install_signal_handlers()
        code = service.run()
    finally:
        engine.dispose()
    if code and service.fatal:
        sys.stderr.write(f"archiver: error: {service.fatal}\n")
    return code


def _read_status(settings: Settings) -> Status:
    with archive(settings) as engine, db.transaction(engine) as conn:
        return read_status(
            conn,
            now=current_time(settings),
            policy=Policy.from_settings(settings),
            schedule_minutes=settings.schedule_minutes,
        )


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    return f"{seconds // 86400} days ago"


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    status = _read_status(settings)
    if args.json:
        out(json.dumps(status.to_json(), indent=2))
        return 0
    now = status.now
    last = status.last_run
    if last is None:
        out("last cycle:    none yet")
    else:
        started = last["started_at"]
        out(
            f"last cycle:    {last['kind']} {last['status']} at {started:%Y-%m-%d %H:%M} "
            f"UTC ({_ago(now, started)}): {last['requests']} requests, "
            f"{last['failed_requests']} failed, {last['rows_written']} rows"
        )
        if last["error"]:
            out(f"               first error: {printable(str(last['error']))}")
    out(f"last success:  {_ago(now, status.last_success_at)}")
    if status.next_cycle_at is not None:
        out(f"next cycle:    {status.next_cycle_at:%Y-%m-%d %H:%M} UTC (if `archiver run` is up)")
    streams = ", ".join(f"{count} {name}" for name, count in status.streams.items())
    out(f"streams:       {streams}")
    out(f"gaps:          {status.gaps} ranges, {status.gap_buckets} buckets lost")
    out(f"at risk:       {status.at_risk_buckets} buckets purged within 24 h, not yet final")
    out("")
    out(
        f"{'dataset':<18} {'res':<5} {'scopes':>6} {'oldest watermark':<17} {'behind':>10} "
        f"{'failing':>7} {'at risk':>7}"
    )
    for scope in status.scopes:
        behind = "" if scope.behind_seconds is None else f"{scope.behind_seconds / 3600:.1f} h"
        mark = scope.oldest_watermark
        out(
            f"{scope.dataset:<18} {scope.resolution:<5} {scope.scopes:>6} "
            f"{'' if mark is None else format(mark, '%Y-%m-%d %H:%M'):<17} {behind:>10} "
            f"{scope.failing_scopes:>7} {scope.at_risk_buckets:>7}"
        )
    return 0


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    status = _read_status(settings)
    limit = settings.health_max_age_minutes
    last = status.last_success_at
    if last is None:
        sys.stderr.write("archiver: unhealthy: no successful cycle yet\n")
        return 1
    age = (status.now - last).total_seconds() / 60
    if age > limit:
        sys.stderr.write(
            f"archiver: unhealthy: last successful cycle {age:.0f} min ago "
            f"(ARCHIVER_HEALTH_MAX_AGE_MINUTES={limit})\n"
        )
        return 1
    out(f"healthy: last successful cycle {age:.0f} min ago")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.demo import run_demo

    run_demo(Path.cwd(), streams=args.streams, days=args.days, out=out)
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    now = current_time(settings)
    stop = args.to or now
    start = (
        args.from_
        or stop
        - {"hour": timedelta(days=1), "day": timedelta(days=31), "month": timedelta(days=366)}[
            args.by
        ]
    )
    if start >= stop:
        raise InputError("--from must be before --to")
    with archive(settings) as engine, db.transaction(engine) as conn:
        rows = usage_report(conn, stream=args.stream, start=start, stop=stop, by=args.by)
    out(render(rows, args.format))
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    with archive(settings) as engine, db.transaction(engine) as conn:
        rows = export_rows(conn, args.table)
        if args.output:
            count = _export_to_file(rows, args.format, Path(args.output), settings)
            sys.stderr.write(f"archiver: wrote {count} rows to {args.output}\n")
        else:
            write_export(rows, args.format, sys.stdout)
    return 0


def _database_files(settings: Settings) -> list[Path]:
    """The SQLite database file and its companions (none for PostgreSQL)."""
    url = settings.database_url
    if not url.startswith("sqlite"):
        return []
    name = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
    if not name or name == ":memory:":
        return []
    base = Path(name)
    return [base, *(Path(f"{base}{suffix}") for suffix in ("-wal", "-shm", "-journal"))]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _export_to_file(
    rows: Iterator[dict[str, object]], fmt: str, output: Path, settings: Settings
) -> int:
    """Write an export through a temporary file beside `output`, renamed at the end.

    Never onto the archive itself: opening it for writing would truncate it to nothing.
    """
    for path in _database_files(settings):
        if _same_file(output, path):
            raise InputError(f"refusing to export onto the database file {path}")
    if output.is_dir():
        raise InputError(f"cannot write {output}: it is a directory")
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8", newline="") as handle:
            count = write_export(rows, fmt, handle)
        os.replace(temporary, output)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from exc
    finally:
        if temporary.exists():
            temporary.unlink()
    return count


# Instants a command may name: bucket arithmetic near year 9999 would overflow, and nothing
# the vendor holds lies outside.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _instant(what: str) -> Callable[[str], datetime]:
    def parse(text: str) -> datetime:
        try:
            value = parse_instant(text, what=what)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if not EARLIEST <= value < LATEST:
            raise argparse.ArgumentTypeError(
                f"{what} {text!r} is out of range: use a time between 1970 and 2199"
            )
        return value

    return parse


def _resolution_choice(text: str) -> str:
    if text.lower() == "all":
        return "all"
    try:
        return Resolution.parse(text).value
    except InputError as exc:
        raise argparse.ArgumentTypeError(f"{exc} or all") from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.simulator import SimConfig, Simulator
    from archiver.simulator.server import Faults

    config = SimConfig(
        streams=args.streams,
        seed=args.seed,
        initial_streams=args.initial_streams,
        growth_days=args.growth_days,
        unreportable_streams=args.unreportable_streams,
        **({"origin": args.origin} if args.origin else {}),
    )
    faults = Faults(
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        throttle_rate=args.throttle_rate,
        truncate_rate=args.truncate_rate,
        seed=args.seed,
    )
    try:
        sim = Simulator(
            config,
            token=args.token,
            clock=args.clock,
            start=args.start,
            faults=faults,
            host=args.host,
            port=args.port,
        )
        sim.start()
    except OSError as exc:
        raise InputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    out(
        f"simulator listening on {sim.url} ({args.streams} streams, seed {args.seed}, "
        f"{args.clock} clock at {sim.now():%Y-%m-%dT%H:%M:%SZ})"
    )
    out(
        f"point the archiver at it: ARCHIVER_API_BASE_URL={sim.url} ARCHIVER_API_TOKEN={args.token}"
    )
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        out("simulator stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every command and option; `--help` works on each."""
    parser = _Parser(
        prog="archiver",
        description="Keep a permanent SQL archive of Real-time Streaming (Millicast) analytics.",
        epilog="Settings come from ARCHIVER_* environment variables or .env; "
        "see config/archiver.env.example.",
    )
    parser.add_argument("--version", action="version", version=f"archiver {__version__}")
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=_Parser
    )

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

    sync = commands.add_parser(
        "sync",
        help="run one cycle, then exit (for cron)",
        description="Discover streams, fetch everything not yet final, store it, then exit. "
        "Exit code 0 when every request succeeded, 1 otherwise (the next run retries).",
    )
    sync.set_defaults(handler=cmd_sync)

    back = commands.add_parser(
        "backfill",
        help="save everything the vendor still holds",
        description="Save what the vendor still holds in [--start, --end) (default: all of "
        "it). Resumable and idempotent: run it again after an interruption.",
    )
    back.add_argument("--start", type=_instant("--start"), help="YYYY-MM-DD or ISO time (UTC)")
    back.add_argument("--end", type=_instant("--end"), help="exclusive; default: now")
    back.add_argument(
        "--resolution",
        type=_resolution_choice,
        default="all",
        help="Hour, Day, Month or all (default)",
    )
    back.add_argument("--streams", help="comma-separated names: only these streams' data")
    back.add_argument(
        "--dry-run",
        action="store_true",
        help="print the requests it would make, without calling the API",
    )
    back.set_defaults(handler=cmd_backfill)

    streams = commands.add_parser(
        "streams",
        help="manage the tracked stream names",
        description="Manage the stream names the archiver asks the vendor about.",
    )
    stream_commands = streams.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=_Parser
    )
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
        description="Track the names in FILE: one a line, # starts a comment.",
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

    runp = commands.add_parser(
        "run",
        help="run the service (cycles after every vendor refresh)",
        description="Apply migrations, wait as a standby while another archiver holds this "
        "database, then run a catch-up cycle and a cycle at ARCHIVER_SCHEDULE_MINUTES past "
        "every hour (UTC). SIGTERM or SIGINT stops it after the transaction in flight.",
    )
    runp.set_defaults(handler=cmd_run)

    stat = commands.add_parser(
        "status",
        help="show what the archive holds and what is behind",
        description="Last and next cycle, streams, watermarks, gaps and data at risk.",
    )
    stat.add_argument("--json", action="store_true", help="machine-readable output")
    stat.set_defaults(handler=cmd_status)

    health = commands.add_parser(
        "health",
        help="exit 0 if the last successful cycle is recent",
        description="Exit 0 when the last successful cycle ended within "
        "ARCHIVER_HEALTH_MAX_AGE_MINUTES, 1 with the reason otherwise (a container health "
        "check).",
    )
    health.set_defaults(handler=cmd_health)

    demo = commands.add_parser(
        "demo",
        help="archive a simulated account into demo.db",
        description="Start the simulator on a free loopback port, archive a few simulated days "
        "of a handful of streams into demo.db in this folder (replacing it), and show what the "
        "archive holds. Needs no account and no settings.",
    )
    demo.add_argument("--streams", type=int, default=5, help="simulated streams (default 5)")
    demo.add_argument("--days", type=int, default=2, help="simulated days of cycles")
    demo.set_defaults(handler=cmd_demo)

    rep = commands.add_parser(
        "report",
        help="bytes in/out per hour, day or month",
        description="Bytes in and out of one stream (or, without --stream, the account) per "
        "hour, day or month, from the archive.",
    )
    rep.add_argument("--stream", help="stream name (default: the whole account)")
    rep.add_argument(
        "--from",
        dest="from_",
        type=_instant("--from"),
        help="first instant, UTC (default: a day, month or year before --to)",
    )
    rep.add_argument("--to", type=_instant("--to"), help="exclusive end, UTC (default: now)")
    rep.add_argument("--by", choices=("hour", "day", "month"), default="day")
    rep.add_argument("--format", choices=("table", "csv", "json"), default="table")
    rep.set_defaults(handler=cmd_report)

    exp = commands.add_parser(
        "export",
        help="dump a table or view as CSV or JSON lines",
        description="Write every row of a table or view to stdout or --output.",
    )
    exp.add_argument(
        "--table",
        required=True,
        choices=EXPORTABLE,
        metavar="TABLE",
        help=f"one of: {', '.join(EXPORTABLE)}",
    )
    exp.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    exp.add_argument("--output", help="file to write (default: stdout)")
    exp.set_defaults(handler=cmd_export)

    sim = commands.add_parser(
        "simulate",
        help="serve a local stand-in for the vendor API",
        description="Serve the vendor's analytics and monitoring endpoints from deterministic "
        "synthetic traffic, with ground truth at /_sim/truth, request counts at /_sim/stats and "
        "a manual clock set by POST /_sim/clock.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    sim.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    sim.add_argument("--streams", type=int, default=20, help="number of simulated streams")
    sim.add_argument("--seed", type=int, default=1, help="seed of the synthetic traffic")
    sim.add_argument("--token", default="sim-token", help="the API secret it accepts")
    sim.add_argument("--clock", choices=("real", "manual"), default="real")
    sim.add_argument("--start", type=_instant("--start"), help="manual clock's first time")
    sim.add_argument(
        "--origin",
        type=_instant("--origin"),
        help="when later streams begin to appear (default 2026-11-01)",
    )
    sim.add_argument("--initial-streams", type=int, help="streams that exist at the origin")
    sim.add_argument(
        "--growth-days", type=float, default=14.0, help="days over which the other streams appear"
    )
    sim.add_argument(
        "--unreportable-streams",
        type=int,
        default=0,
        help="streams whose names the vendor cannot report on (contain --)",
    )
    sim.add_argument("--latency-ms", type=float, default=0.0, help="delay of every response")
    sim.add_argument("--error-rate", type=_rate, default=0.0, help="fraction answered 503")
    sim.add_argument(
        "--throttle-rate", type=_rate, default=0.0, help="fraction answered 429 with Retry-After"
    )
    sim.add_argument(
        "--truncate-rate", type=_rate, default=0.0, help="fraction of bodies cut short"
    )
    sim.set_defaults(handler=cmd_simulate)
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
    except BrokenPipeError:
        # `archiver export | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
