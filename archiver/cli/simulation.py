"""`archiver simulate` and `archiver demo`: the local stand-in for the vendor, and a tour of it."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.cli._output import out, say
from archiver.cli._parsing import Commands, count, instant, port, rate
from archiver.errors import InputError

if TYPE_CHECKING:
    from archiver.config import Settings


def add_demo(commands: Commands) -> None:
    """The `demo` command."""
    demo = commands.add_parser(
        "demo",
        help="archive a simulated account into demo.db",
        description="Start the simulator on a free loopback port, archive a few simulated days "
        "of a handful of streams into demo.db in this folder (replacing it), and show what the "
        "archive holds. Needs no account and no settings.",
    )
    demo.add_argument(
        "--streams", type=count(200), default=5, help="simulated streams (default 5, at most 200)"
    )
    demo.add_argument(
        "--days", type=count(14), default=2, help="simulated days of cycles (at most 14)"
    )
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.demo import run_demo

    run_demo(Path.cwd(), streams=args.streams, days=args.days, out=out)
    return 0


def add_simulate(commands: Commands) -> None:
    """The `simulate` command."""
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
    sim.add_argument("--port", type=port, default=8765, help="port (0: any free port)")
    sim.add_argument("--streams", type=int, default=20, help="number of simulated streams")
    sim.add_argument("--seed", type=int, default=1, help="seed of the synthetic traffic")
    sim.add_argument("--token", default="sim-token", help="the API secret it accepts")
    sim.add_argument("--clock", choices=("real", "manual"), default="real")
    sim.add_argument("--start", type=instant("--start"), help="manual clock's first time")
    sim.add_argument(
        "--origin",
        type=instant("--origin"),
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
    sim.add_argument(
        "--day-retention-days",
        type=count(3660),
        default=365,
        help="days the vendor really keeps Day data (90: purged early, zeros beyond)",
    )
    sim.add_argument(
        "--history-days", type=count(3660), default=60, help="days of traffic before the origin"
    )
    sim.add_argument("--latency-ms", type=float, default=0.0, help="delay of every response")
    sim.add_argument("--error-rate", type=rate, default=0.0, help="fraction answered 503")
    sim.add_argument(
        "--throttle-rate", type=rate, default=0.0, help="fraction answered 429 with Retry-After"
    )
    sim.add_argument("--truncate-rate", type=rate, default=0.0, help="fraction of bodies cut short")
    sim.add_argument(
        "--date-offset-seconds",
        type=float,
        default=0.0,
        help="a wrong clock: shift the Date header of answers by this much",
    )
    sim.add_argument(
        "--date-every",
        type=int,
        default=1,
        help="shift only every n-th answer's Date (2: every other)",
    )
    sim.add_argument(
        "--date-path", default="", help="shift the Date only on paths ending with this"
    )
    sim.add_argument("--no-date", action="store_true", help="send no Date header at all")
    _add_simulated_source_options(sim)
    sim.set_defaults(handler=cmd_simulate)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.simulator import SimConfig, Simulator
    from archiver.simulator.server import Faults

    config = SimConfig(
        streams=args.streams,
        seed=args.seed,
        initial_streams=args.initial_streams,
        growth_days=args.growth_days,
        unreportable_streams=args.unreportable_streams,
        day_retention_days=args.day_retention_days,
        history_days=args.history_days,
        **({"origin": args.origin} if args.origin else {}),
        **_simulated_sources(args),
    )
    faults = Faults(
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        throttle_rate=args.throttle_rate,
        truncate_rate=args.truncate_rate,
        seed=args.seed,
        date_offset_seconds=args.date_offset_seconds,
        date_every=max(args.date_every, 1),
        date_path=args.date_path,
        no_date=args.no_date,
        graphql_error_rate=args.graphql_error_rate,
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
    if args.streams >= 1000:
        say(f"summing the account's days of {args.streams} streams before the first answer")
    sim.prepare()  # the account's sums ready, as the vendor has them: not summed per request
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
        "--webhook-loss-rate", type=rate, default=0.0, help="fraction of events never sent"
    )
    sim.add_argument(
        "--graphql-max-per-page",
        type=count(10_000),
        default=100,
        help="the largest GraphQL page (perPage, first, last, limit) served (default 100)",
    )
    sim.add_argument(
        "--graphql-error-rate",
        type=rate,
        default=0.0,
        help="fraction of GraphQL answers carrying errors beside partial data",
    )


def _simulated_sources(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "session_minutes": args.session_minutes,
        "exact_token_streams": args.exact_token_streams,
        "names_per_exact_token": args.names_per_exact_token,
        "graphql_max_per_page": args.graphql_max_per_page,
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
