"""The `archiver` command line: parses arguments, runs a command, turns errors into one line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NoReturn

from archiver import __version__
from archiver.config import Settings, get_settings
from archiver.errors import ArchiverError, InputError
from archiver.observability import setup_logging
from archiver.store import db
from archiver.timeutil import parse_instant

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


def _instant(what: str) -> Callable[[str], datetime]:
    def parse(text: str) -> datetime:
        try:
            return parse_instant(text, what=what)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

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
