"""Read-only commands load only what they use: never the HTTP client, the scheduler, Alembic,
the metrics library, GraphQL or the simulator (a third of a second of every `status` and
`health` once), and `--help` not even SQLAlchemy, the settings or the planner. Speed itself is
measured in bench/startup.py, never here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine

from archiver.timeutil import Resolution, format_iso
from tests.test_sync_paths import NOW, Vendor, cycle, settings

# What only writers, the service and the simulator use: the vendor's HTTP and GraphQL clients
# and their answers' models, the cycle, the scheduler, migrations (Alembic with Mako and
# Pygments), Prometheus, the simulator.
WRITERS_ONLY = (
    "httpx",
    "httpcore",
    "graphql",
    "apscheduler",
    "alembic",
    "mako",
    "pygments",
    "prometheus_client",
    "archiver.api.client",
    "archiver.api.series",
    "archiver.api.graphql",
    "archiver.cycle.sync",
    "archiver.service.runner",
    "archiver.simulator",
)
# Of the API layer, the readers load only the client's options, which the settings make.
API_FOR_READERS = {"archiver.api", "archiver.api.options"}
# Loaded by commands that read the settings or the archive, never by `--help`.
READERS_ONLY = (
    "sqlalchemy",
    "pydantic",
    "pydantic_settings",
    "archiver.config",
    "archiver.datasets",
    "archiver.vocabulary",
    "archiver.rules",
)

COMMANDS = [
    ["--help"],
    ["health"],
    ["status"],
    ["status", "--json"],
    ["report"],
    ["report", "--by", "stream"],
    ["report", "--format", "html"],
    ["export", "--table", "stream_usage"],
]

# Each command in turn in one interpreter, as `python -m archiver` runs it; what is loaded
# after each (sys.modules only grows, so the lightest command goes first).
SCRIPT = """
import contextlib, io, json, sys
from archiver.cli import main

seen = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    seen.append([argv, code, sorted(sys.modules)])
print(json.dumps(seen))
"""


def _inside(loaded: list[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(f"{p}.") for p in packages))


def test_read_only_commands_load_neither_the_client_nor_the_scheduler_nor_alembic(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    vendor = Vendor()
    vendor.traffic[("cam", Resolution.HOUR, NOW.replace(hour=9, minute=0))] = 1000
    assert cycle(engine, vendor, settings(streams=["cam"])).ok
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env.update(ARCHIVER_DATABASE_URL=database_url, ARCHIVER_NOW=format_iso(NOW))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(COMMANDS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    forbidden = WRITERS_ONLY + (("psycopg",) if database_url.startswith("sqlite") else ())
    found: dict[str, list[str]] = {}
    for argv, code, loaded in json.loads(result.stdout):
        assert code == 0, argv
        api = set(_inside(loaded, ("archiver.api",))) - API_FOR_READERS
        found[" ".join(argv)] = sorted({*_inside(loaded, forbidden), *api})
        if argv == ["--help"]:
            found["--help (readers' libraries)"] = _inside(loaded, READERS_ONLY)
        else:
            assert "sqlalchemy" in loaded
    assert {command: names for command, names in found.items() if names} == {}
