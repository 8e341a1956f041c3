"""The `archiver` command line: parses arguments, runs a command, turns errors into one line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from archiver import __version__
from archiver.cli import cycles, database, reading, service, simulation, streams
from archiver.cli._output import say
from archiver.cli._parsing import Handler, Parser, subcommands
from archiver.errors import ArchiverError

log = logging.getLogger("archiver.cli")

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Every command and option; `--help` works on each."""
    parser = Parser(
        prog="archiver",
        description="Keep a permanent SQL archive of Real-time Streaming (Millicast) analytics.",
        epilog="Settings come from ARCHIVER_* environment variables or .env; "
        "see config/archiver.env.example.",
    )
    parser.add_argument("--version", action="version", version=f"archiver {__version__}")
    commands = subcommands(parser)
    # The order of `archiver --help`.
    database.add_db(commands)
    cycles.add_sync(commands)
    cycles.add_backfill(commands)
    streams.add_streams_commands(commands)
    service.add_run(commands)
    service.add_status(commands)
    service.add_health(commands)
    simulation.add_demo(commands)
    reading.add_report(commands)
    reading.add_export(commands)
    simulation.add_simulate(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `archiver` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    # Imported once the arguments are good: `--help` and a usage mistake need neither.
    from archiver.config import get_settings
    from archiver.observability import setup_logging

    try:
        settings = get_settings()
        setup_logging(settings)
        for line in settings.warnings:
            log.warning("%s", line)
        return handler(args, settings)
    except ArchiverError as exc:
        # Settings report every problem at once, a line each.
        for line in str(exc).splitlines() or [type(exc).__name__]:
            say(f"error: {line}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BrokenPipeError:
        # `archiver export | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OverflowError, ValueError, OSError) as exc:
        # A last net, never the plan: every known bad input has its own message. The detail
        # goes to the log (at DEBUG with the traceback), the user gets one line.
        log.debug("unexpected error", exc_info=True)
        first = str(exc).splitlines()[0] if str(exc) else ""
        say(f"error: {type(exc).__name__}: {first} (ARCHIVER_LOG_LEVEL=DEBUG shows where)")
        return 1
