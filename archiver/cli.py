"""The `archiver` command line: parses arguments, runs a command, turns errors into one line."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO

from sqlalchemy.engine import Connection, Engine

from archiver import __version__
from archiver.api.client import AnalyticsClient
from archiver.api.endpoints import ApiRequest, check_stream_name, refusal_reason
from archiver.attribution import Attribution, read_attribution, unexplained_warning
from archiver.config import Settings, get_settings
from archiver.errors import ArchiverError, ConfigError, InputError, LockError
from archiver.observability import setup_logging
from archiver.plan import Plan, Policy, Selection, StreamEntry
from archiver.report import EXPORTABLE, export_rows, write_export
from archiver.status import Status, read_status
from archiver.store import db
from archiver.store.state import interrupt_stale_runs
from archiver.streams import (
    add_streams,
    discover_names,
    list_streams,
    plannable,
    read_names_file,
    remove_streams,
)
from archiver.sync import CycleReport, current_time, plan_cycle, run_cycle
from archiver.text import printable
from archiver.timeutil import Resolution, format_iso, parse_instant
from archiver.tokens import TokenPattern, load_patterns, matching
from archiver.usage import render_periods, render_streams, top_streams, usage_report

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
    engine = db.make_engine(_writable_url(settings))
    try:
        db.upgrade(engine, args.revision)
        out(
            f"database {db.safe_url(settings.database_url)} is at revision "
            f"{db.current_revision(engine)}"
        )
    finally:
        engine.dispose()
    return 0


def _writable_url(settings: Settings) -> str:
    if db.is_memory_sqlite(settings.database_url):
        raise ConfigError(
            "invalid setting ARCHIVER_DATABASE_URL: an in-memory SQLite database keeps "
            "nothing; name a file such as sqlite:///archiver.db"
        )
    return settings.database_url


@contextmanager
def archive(settings: Settings) -> Iterator[Engine]:
    """The migrated archive the settings name, for commands that write; one clear error if
    it cannot be reached."""
    engine = db.make_engine(_writable_url(settings))
    try:
        db.upgrade(engine)
        yield engine
    finally:
        engine.dispose()


@contextmanager
def sole_writer(settings: Settings) -> Iterator[Engine]:
    """The archive, locked with the instance lock `archiver run` holds, then migrated: one
    writer at a time.

    A one-shot `sync` or `backfill` beside a running service exits with one line instead of
    waiting: the service already keeps the archive up to date.
    """
    from archiver.service.lock import lock_for

    engine = db.make_engine(_writable_url(settings))
    try:
        db.check_connection(engine)
        lock = lock_for(engine)
        if not lock.try_acquire():
            if lock.problem:
                raise LockError(f"cannot take the instance lock: {lock.problem}")
            holder = lock.holder()
            who = f" ({holder.describe()})" if holder else ""
            raise LockError(
                f"another archiver is writing to this database{who}; it already keeps the "
                "archive up to date. Run this command when it has stopped."
            )
        try:
            # Only the lock holder migrates: a newer cron `sync` must not change the schema
            # under a running older service.
            db.upgrade(engine)
            with db.transaction(engine) as conn:
                stale = interrupt_stale_runs(conn=conn, at=current_time(settings))
            if stale:
                log.warning("marked %d run(s) left running by a stopped process interrupted", stale)
            yield engine
        finally:
            lock.release()
    finally:
        engine.dispose()


@contextmanager
def archive_readonly(settings: Settings) -> Iterator[Engine]:
    """The existing archive, opened so that nothing can be written or migrated."""
    engine = db.open_readonly(settings.database_url)
    try:
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
    with sole_writer(settings) as engine, AnalyticsClient.from_settings(settings) as client:
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
    if not args.dry_run:
        settings.require_token()
    with (archive if args.dry_run else sole_writer)(settings) as engine:
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
            if not extra:
                _warn_if_no_streams(engine)
            out("dry run: these requests would be made (nothing is fetched or written)")
            for line in _describe_plan(plan):
                out(line)
            return 0
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
        if not names:
            _warn_if_no_streams(engine)
    return _print_report(report)


NO_STREAMS = (
    "archiver: no stream is tracked, so no per-stream history is saved (account totals only): "
    "name streams (ARCHIVER_STREAMS, `archiver streams add`), let publish tokens list them "
    "(ARCHIVER_PUBLISH_TOKENS), or catch them live (discovery, feed webhooks: "
    "ARCHIVER_WEBHOOK_PORT); README: Never miss a stream\n"
)


def _warn_if_no_streams(engine: Engine) -> None:
    """One line when the backfill has no per-stream scope: never a silent empty backfill."""
    with db.transaction(engine) as conn:
        if not plannable(conn):
            sys.stderr.write(NO_STREAMS)


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


def _json_time(value: object) -> str:
    # One time style in every output: the one SQLite stores and `export` writes.
    if isinstance(value, datetime):
        return format_iso(value)
    return str(value)


def cmd_streams_list(args: argparse.Namespace, settings: Settings) -> int:
    with archive_readonly(settings) as engine, db.transaction(engine) as conn:
        rows = list_streams(conn)
        patterns = load_patterns(conn)
    for row in rows:
        row["token"] = ", ".join(p.describe() for p in matching(str(row["stream_name"]), patterns))
    if args.json:
        out(json.dumps(rows, default=_json_time, indent=2))
        return 0
    out(f"{'stream':<40} {'source':<10} {'status':<8} {'added':<17} {'last seen':<17} token")
    for row in rows:
        seen = row["last_seen_at"]
        added = row["added_at"]
        name = printable(str(row["stream_name"]), 140)
        out(
            f"{name:<40} {row['source']!s:<10} {row['status']!s:<8} "
            f"{added:%Y-%m-%d %H:%M} "
            f"{'' if seen is None else format(seen, '%Y-%m-%d %H:%M'):<17} {row['token']}".rstrip()
        )
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


def _read_status(settings: Settings, *, with_holder: bool = True) -> Status:
    with archive_readonly(settings) as engine:
        with db.transaction(engine) as conn:
            status = read_status(
                conn,
                now=current_time(settings),
                policy=Policy.from_settings(settings),
                schedule_minutes=settings.schedule_minutes,
                interval_seconds=settings.schedule_interval_seconds,
            )
        if with_holder:
            from archiver.service.lock import current_holder

            holder = current_holder(settings.database_url, engine)
            status.active = (
                None
                if holder is None
                else {
                    "host": holder.host,
                    "pid": holder.pid,
                    "since": holder.since,
                    "description": holder.describe(),
                }
            )
            if holder is None:
                status.next_cycle_at = None  # nothing is scheduled without a service
    return status


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return f"{-seconds // 60} min ahead of this host's clock"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    return f"{seconds // 86400} days ago"


def _read_attribution(settings: Settings) -> Attribution | None:
    try:
        with archive_readonly(settings) as engine, db.transaction(engine) as conn:
            return read_attribution(conn, now=current_time(settings))
    except ArchiverError as exc:
        # An archive not yet upgraded has no attribution view: the rest of status still holds.
        log.warning("cannot read the usage attribution: %s", exc)
        return None


def _print_attribution(attribution: Attribution | None, settings: Settings) -> None:
    if attribution is None:
        out("explained:     unknown (run `archiver db upgrade`)")
        return
    share = attribution.explained_share
    if share is None:
        out("explained:     no account egress archived over the last 7 days")
        return
    out(
        f"explained:     {share * 100:.1f}% of account egress over the last 7 days is "
        f"explained by archived streams ({attribution.unattributed_bytes_out} bytes are not)"
    )
    warning = unexplained_warning(attribution, settings.unattributed_warn_percent)
    if warning is not None:
        sys.stderr.write(f"archiver: warning: {warning}\n")


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    status = _read_status(settings)
    attribution = _read_attribution(settings)
    if args.json:
        explained = None if attribution is None else attribution.to_json()
        out(json.dumps({**status.to_json(), "attribution": explained}, indent=2))
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
    if status.active is None:
        out("service:       no service holding the lock (`archiver run` is not running)")
    else:
        active = status.active
        out(f"service:       active, {active['description']}")
        if status.next_cycle_at is not None:
            every = (
                f"every {settings.schedule_interval_seconds} s"
                if settings.schedule_interval_seconds
                else f"at minutes {settings.schedule_minutes}"
            )
            out(f"next cycle:    {status.next_cycle_at:%Y-%m-%d %H:%M:%S} UTC ({every})")
    streams = ", ".join(f"{count} {name}" for name, count in status.streams.items())
    out(f"streams:       {streams}")
    out(f"gaps:          {status.gaps} ranges, {status.gap_buckets} buckets lost")
    out(f"at risk:       {status.at_risk_buckets} buckets purged within 24 h, not yet final")
    _print_attribution(attribution, settings)
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
    # Read-only and lock-free: the container health check must never write or wait.
    status = _read_status(settings, with_holder=False)
    limit = settings.health_max_age_minutes
    last = status.last_success_at
    if last is None:
        sys.stderr.write("archiver: unhealthy: no successful cycle yet\n")
        return 1
    age = (status.now - last).total_seconds() / 60
    if -limit <= age < 0:
        # A little skew between the host that wrote the archive and this one's clock.
        out(
            f"healthy: last successful cycle at {last:%Y-%m-%d %H:%M} UTC, {-age:.0f} min "
            "ahead of this host's clock (check the clock)"
        )
        return 0
    if age < 0:
        sys.stderr.write(
            f"archiver: unhealthy: last successful cycle at {last:%Y-%m-%d %H:%M} UTC is "
            f"{-age:.0f} min in the future: this host's clock (or the archive writer's) is wrong\n"
        )
        return 1
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
        - {
            "hour": timedelta(days=1),
            "day": timedelta(days=31),
            "month": timedelta(days=366),
            "stream": timedelta(days=31),
        }[args.by]
    )
    if start >= stop:
        raise InputError("--from must be before --to")
    _check_report_args(args)
    with archive_readonly(settings) as engine, db.transaction(engine) as conn:
        text = _usage_text(conn, args, start, stop, now)
    if args.output:
        _write_output(Path(args.output), settings, lambda handle: handle.write(text + "\n"))
        sys.stderr.write(f"archiver: wrote {args.output}\n")
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
    if args.by == "stream" and args.stream:
        raise InputError("--by stream ranks every stream: drop --stream")


def _usage_text(
    conn: Connection, args: argparse.Namespace, start: datetime, stop: datetime, now: datetime
) -> str:
    if args.format == "html":
        from archiver.usage_html import html_report

        return html_report(conn, start=start, stop=stop, by=args.by, top=args.top, now=now)
    if args.by == "stream":
        ranking, first, last = top_streams(conn, start=start, stop=stop, top=args.top)
        return render_streams(ranking, first, last, args.format)
    rows = usage_report(conn, stream=args.stream, start=start, stop=stop, by=args.by)
    return render_periods(rows, args.format)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    with archive_readonly(settings) as engine, db.transaction(engine) as conn:
        rows = export_rows(conn, args.table)
        if args.output:
            count = _write_output(
                Path(args.output), settings, lambda handle: write_export(rows, args.format, handle)
            )
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


def _write_output(output: Path, settings: Settings, write: Callable[[TextIO], int]) -> int:
    """Write an export or report through a temporary file beside `output`, renamed at the end.

    Never onto the archive itself: opening it for writing would truncate it to nothing.
    """
    for path in _database_files(settings):
        if _same_file(output, path):
            raise InputError(f"refusing to write onto the database file {path}")
    if output.is_dir():
        raise InputError(f"cannot write {output}: it is a directory")
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8", newline="") as handle:
            count = write(handle)
        os.replace(temporary, output)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from exc
    finally:
        if temporary.exists():
            temporary.unlink()
    return count


def _instant(what: str) -> Callable[[str], datetime]:
    def parse(text: str) -> datetime:
        try:
            return parse_instant(text, what=what)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _resolution_choice(text: str) -> str:
    if text.lower() == "all":
        return "all"
    try:
        return Resolution.parse(text).value
    except InputError as exc:
        raise argparse.ArgumentTypeError(f"{exc} or all") from None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _count(most: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or not 1 <= int(text) <= most:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {most}")
        return int(text)

    return parse


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
        **_simulated_sources(args),
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
            webhook=_simulated_webhook(args),
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


def _session_minutes(text: str) -> tuple[int, int]:
    try:
        shortest, longest = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SHORTEST,LONGEST in minutes") from None
    if not 1 <= shortest <= longest <= 360:
        raise argparse.ArgumentTypeError("sessions last 1 to 360 minutes, shortest first")
    return shortest, longest


def _add_simulated_source_options(sim: argparse.ArgumentParser) -> None:
    sim.add_argument(
        "--session-minutes",
        type=_session_minutes,
        help="SHORTEST,LONGEST session length in minutes, such as 5,360 (default: 1-5 hours)",
    )
    sim.add_argument(
        "--exact-token-streams",
        type=int,
        default=0,
        help="streams published under exact-name tokens (the rest under regex tokens)",
    )
    sim.add_argument(
        "--names-per-exact-token", type=int, default=3, help="exact names per publish token"
    )
    sim.add_argument("--webhook-url", help="POST signed feed events here as sessions start/end")
    sim.add_argument("--webhook-secret", help="the webhook secret (base64) that signs events")
    sim.add_argument(
        "--webhook-loss-rate", type=_rate, default=0.0, help="fraction of events never sent"
    )


def _simulated_sources(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "session_minutes": args.session_minutes,
        "exact_token_streams": args.exact_token_streams,
        "names_per_exact_token": args.names_per_exact_token,
    }


def _simulated_webhook(args: argparse.Namespace) -> Any:
    from archiver.simulator.server import WebhookTarget

    if args.webhook_url is None:
        return None
    if not args.webhook_secret:
        raise InputError("--webhook-url needs --webhook-secret (base64, as the dashboard shows)")
    try:
        base64.b64decode(args.webhook_secret, validate=True)
    except ValueError:
        raise InputError("--webhook-secret must be base64") from None
    return WebhookTarget(
        url=args.webhook_url,
        secret=args.webhook_secret,
        loss_rate=args.webhook_loss_rate,
        seed=args.seed,
    )


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
    demo.add_argument(
        "--streams", type=_count(200), default=5, help="simulated streams (default 5, at most 200)"
    )
    demo.add_argument(
        "--days", type=_count(14), default=2, help="simulated days of cycles (at most 14)"
    )
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
    rep.add_argument(
        "--by",
        choices=("hour", "day", "month", "stream"),
        default="day",
        help="periods, or a ranking of streams by egress (default day)",
    )
    rep.add_argument(
        "--top", type=int, default=10, help="with --by stream: how many streams (default 10)"
    )
    rep.add_argument(
        "--format",
        choices=("table", "csv", "json", "html"),
        default="table",
        help="html: one self-contained page of charts (account, top streams, countries)",
    )
    rep.add_argument("--output", help="file to write (default: stdout)")
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
        "synthetic traffic, with ground truth at /_sim/truth (dataset=attribution: usage no "
        "revealed stream explains), the names each source revealed at /_sim/revealed, request "
        "counts at /_sim/stats and a manual clock set by POST /_sim/clock; also publish tokens "
        "and signed feed webhooks.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    sim.add_argument("--port", type=_port, default=8765, help="port (0: any free port)")
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
    _add_simulated_source_options(sim)
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
        # Settings report every problem at once, a line each.
        for line in str(exc).splitlines() or [type(exc).__name__]:
            sys.stderr.write(f"archiver: error: {line}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("archiver: interrupted\n")
        return 130
    except BrokenPipeError:
        # `archiver export | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OverflowError, ValueError, OSError) as exc:
        # A last net, never the plan: every known bad input has its own message. The detail
        # goes to the log (at DEBUG with the traceback), the user gets one line.
        log.debug("unexpected error", exc_info=True)
        sys.stderr.write(
            f"archiver: error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            " (ARCHIVER_LOG_LEVEL=DEBUG shows where)\n"
        )
        return 1
