"""Argument parsing shared by the commands: the one-line-error parser and the value types."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn, TypeAlias

from archiver.errors import InputError
from archiver.timeutil import Resolution, parse_instant

if TYPE_CHECKING:  # the settings' library is loaded by the commands that read them, not --help
    from archiver.config import Settings

Handler: TypeAlias = "Callable[[argparse.Namespace, Settings], int]"
# What `add_subparsers` returns: each command module adds its parsers to it.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (plus where to find help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def subcommands(parser: argparse.ArgumentParser) -> Commands:
    """The COMMAND slot of `parser`; its commands report usage mistakes in one line too."""
    return parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=Parser
    )


def instant(what: str) -> Callable[[str], datetime]:
    """A type for option `what`: a UTC date or ISO time, refused with the option's name."""

    def parse(text: str) -> datetime:
        try:
            return parse_instant(text, what=what)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def resolution_choice(text: str) -> str:
    """A type for --resolution: Hour, Day, Month (any case) or all."""
    if text.lower() == "all":
        return "all"
    try:
        return Resolution.parse(text).value
    except InputError as exc:
        raise argparse.ArgumentTypeError(f"{exc} or all") from None


def port(text: str) -> int:
    """A type for a TCP port; 0 asks for any free one."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def count(most: int) -> Callable[[str], int]:
    """A type for a whole number from 1 to `most`."""

    def parse(text: str) -> int:
        if not text.isdigit() or not 1 <= int(text) <= most:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {most}")
        return int(text)

    return parse


def rate(text: str) -> float:
    """A type for a fraction from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value
