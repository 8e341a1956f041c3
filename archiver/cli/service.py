"""`archiver run`, `status` and `health`: the service and what it reports."""

from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from archiver.cli._output import out, say, table_row
from archiver.cli._parsing import Commands
from archiver.errors import ArchiverError
from archiver.text import printable

# The handlers import the store and the queries when they run: building the parser, which
# every command (and `--help`) does, loads neither; `status` and `health` never load the
# service's scheduler, the HTTP client or Alembic.
if TYPE_CHECKING:
    from archiver.config import Settings
    from archiver.reading.attribution import Attribution
    from archiver.reading.status import Status

log = logging.getLogger("archiver.cli")

# The per-dataset table of `status`: title and alignment/width of each column.
_SCOPE_COLUMNS = (
    ("dataset", "<21"),  # stream_tracking_usage, the longest name
    ("res", "<5"),
    ("scopes", ">6"),
    ("oldest watermark", "<17"),
    ("behind", ">10"),
    ("failing", ">7"),
    ("at risk", ">7"),
)


def add_run(commands: Commands) -> None:
    """The `run` command."""
    runp = commands.add_parser(
        "run",
        help="run the service (cycles after every vendor refresh)",
        description="Wait as a standby while another archiver holds this database, then "
        "apply migrations, run a catch-up cycle and a cycle at ARCHIVER_SCHEDULE_MINUTES past "
        "every hour (UTC). SIGTERM or SIGINT stops it after the transaction in flight.",
    )
    runp.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.service.runner import Service
    from archiver.store import db

    settings.require_token()
    engine = db.make_engine(settings.database_url)
    try:
        service = Service(settings, engine)
        service.install_signal_handlers()
        code = service.run()
    finally:
        engine.dispose()
    if code and service.fatal:
        say(f"error: {service.fatal}")
    return code


def add_status(commands: Commands) -> None:
    """The `status` command."""
    stat = commands.add_parser(
        "status",
        help="show what the archive holds and what is behind",
        description="Last and next cycle, streams, watermarks, gaps and data at risk.",
    )
    stat.add_argument("--json", action="store_true", help="machine-readable output")
    stat.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.rules.clock_trust import ANSWERS_NOT_SETTLED

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
        problem = last.get("clock_problem")
        if last["error"] and last["error"] != problem:
            out(f"               first error: {printable(str(last['error']))}")
        skew = last["clock_skew_seconds"]  # the vendor's clock minus this host's
        if problem and str(problem).startswith(ANSWERS_NOT_SETTLED):
            out(f"clock:         {printable(str(problem))} (the next cycle asks again)")
        elif problem:
            out(
                "clock:         NOT BELIEVED, nothing was settled on it (the next cycle with "
                f"a believable clock settles it): {printable(str(problem))}"
            )
        elif skew is not None and abs(skew) >= 60:
            side = "behind" if skew > 0 else "ahead of"
            out(
                f"clock:         this host's clock is {abs(skew) / 60:.0f} min {side} the "
                "vendor's (cycles follow the vendor's; check NTP)"
            )
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
    if status.disagreements is not None:
        out(
            f"reconcile:     {status.disagreements} months or days whose archived parts do not "
            f"sum to them ({status.disagreements_with_gaps} with a recorded gap; view "
            "reconciliation)"
        )
    _print_attribution(attribution, settings)
    out("")
    out(table_row(_SCOPE_COLUMNS))
    for scope in status.scopes:
        behind = "" if scope.behind_seconds is None else f"{scope.behind_seconds / 3600:.1f} h"
        mark = scope.oldest_watermark
        values = (
            scope.dataset,
            scope.resolution,
            scope.scopes,
            "" if mark is None else format(mark, "%Y-%m-%d %H:%M"),
            behind,
            scope.failing_scopes,
            scope.at_risk_buckets,
        )
        out(table_row(zip(values, (spec for _, spec in _SCOPE_COLUMNS), strict=True)))
    return 0


def _read_status(settings: Settings, *, with_holder: bool = True) -> Status:
    from archiver.cli._archive import archive_readonly
    from archiver.reading.status import read_status_now
    from archiver.store import db

    with archive_readonly(settings) as engine:
        with db.transaction(engine) as conn:
            status = read_status_now(conn, settings)
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
    from archiver.cli._archive import archive_readonly
    from archiver.cycle.report import current_time
    from archiver.reading.attribution import read_attribution
    from archiver.store import db

    try:
        with archive_readonly(settings) as engine, db.transaction(engine) as conn:
            return read_attribution(conn, now=current_time(settings))
    except ArchiverError as exc:
        # An archive not yet upgraded has no attribution view: the rest of status still holds.
        log.warning("cannot read the usage attribution: %s", exc)
        return None


def _print_attribution(attribution: Attribution | None, settings: Settings) -> None:
    from archiver.reading.attribution import unexplained_warning

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
    if attribution.excess_bytes_out:
        say(
            f"warning: in some hours the streams report {attribution.excess_bytes_out} bytes "
            "out more than the account: a vendor inconsistency (usage_attribution.excess_*)"
        )
    warning = unexplained_warning(attribution, settings.unattributed_warn_percent)
    if warning is not None:
        say(f"warning: {warning}")


def add_health(commands: Commands) -> None:
    """The `health` command."""
    health = commands.add_parser(
        "health",
        help="exit 0 if the last successful cycle is recent",
        description="Exit 0 when the last successful cycle ended within "
        "ARCHIVER_HEALTH_MAX_AGE_MINUTES, 1 with the reason otherwise (a container health "
        "check).",
    )
    health.set_defaults(handler=cmd_health)


def _clock_note(status: Status) -> str:
    """Why the last cycle settled nothing, when its clock was not believed ('' otherwise)."""
    from archiver.rules.clock_trust import ANSWERS_NOT_SETTLED

    problem = None if status.last_run is None else status.last_run.get("clock_problem")
    if not problem or str(problem).startswith(ANSWERS_NOT_SETTLED):
        return ""
    return f"; the vendor's clock is not believed: {printable(str(problem))}"


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    # Read-only and lock-free: the container health check must never write or wait.
    status = _read_status(settings, with_holder=False)
    limit = settings.health_max_age_minutes
    last = status.last_success_at
    if last is None:
        say(f"unhealthy: no successful cycle yet{_clock_note(status)}")
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
        say(
            f"unhealthy: last successful cycle at {last:%Y-%m-%d %H:%M} UTC is "
            f"{-age:.0f} min in the future: this host's clock (or the archive writer's) is wrong"
        )
        return 1
    if age > limit:
        say(
            f"unhealthy: last successful cycle {age:.0f} min ago "
            f"(ARCHIVER_HEALTH_MAX_AGE_MINUTES={limit}){_clock_note(status)}"
        )
        return 1
    out(f"healthy: last successful cycle {age:.0f} min ago")
    return 0
