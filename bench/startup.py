"""How fast the read-only commands start: process wall and CPU, beside the libraries' floors.

`python -m bench --only startup` (or `python -m bench.startup`) builds a small archive with
`archiver demo`, then runs `--help`, `health`, `status`, `report` and `export` as real
processes, at least five times each, in turns with `python -c pass` and the imports no reading
command can skip (SQLAlchemy, pydantic-settings) and with the same commands at the revision
before issue 24's start-up work. One `-X importtime` run per command says where its time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# main before issue 24 goal 5 (the read-only commands' start); `--before` measures another.
BEFORE = "d5d8ac2"
HEADING = "## Start of the read-only commands (`python -m bench --only startup`)"
# The targets of issue 24 (process wall on an idle machine).
TARGETS = {"health": 0.25}
TARGET = 0.35

BASELINES: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("python -c 'import sqlalchemy'", ["-c", "import sqlalchemy"]),
    (
        "python -c 'import sqlalchemy, pydantic_settings' (the floor of every reading command)",
        ["-c", "import sqlalchemy, pydantic_settings"],
    ),
]
COMMANDS: list[tuple[str, list[str]]] = [
    ("archiver --help", ["--help"]),
    ("archiver health", ["health"]),
    ("archiver status", ["status"]),
    ("archiver report", ["report"]),
    ("archiver export --table stream_usage", ["export", "--table", "stream_usage"]),
]


@dataclass
class Case:
    """One command line and its runs: process wall and CPU (user + system) seconds."""

    name: str
    argv: list[str]
    env: dict[str, str]
    target: float | None = None
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)

    def row(self, floor: float) -> str:
        best, middle = min(self.walls), statistics.median(self.walls)
        verdict = ""
        if self.target is not None:
            verdict = f"{'met' if best < self.target else 'not met'} ({self.target} s)"
        return (
            f"| {self.name} | {best:.3f} | {middle:.3f} | {min(self.cpus):.3f} | "
            f"{statistics.median(self.cpus):.3f} | {min(self.cpus) - floor:+.3f} | {verdict} |"
        )


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one process (its own rusage, from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = 0  # reaped above; keeps Popen from waiting again
    return wall, usage.ru_utime + usage.ru_stime


def measure(cases: list[Case], runs: int, cwd: Path) -> None:
    """Each case `runs` times, in turns (a busy machine's ups and downs fall on all alike)."""
    for case in cases:
        run_once(case.argv, case.env, cwd)  # warms the file cache and writes the bytecode
    for _ in range(runs):
        for case in cases:
            wall, cpu = run_once(case.argv, case.env, cwd)
            case.walls.append(wall)
            case.cpus.append(cpu)


def import_breakdown(case: Case, cwd: Path, top: int = 6) -> str:
    """The packages whose imports cost a command most, from one `-X importtime` run (each
    module's own time, summed by top-level package: no time is counted twice)."""
    argv = [case.argv[0], "-X", "importtime", *case.argv[1:]]
    result = subprocess.run(
        argv, env=case.env, cwd=cwd, capture_output=True, text=True, check=False
    )
    costs: dict[str, int] = {}
    for line in result.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or "self" in fields[0]:
            continue
        package = fields[2].strip().split(".")[0]
        costs[package] = costs.get(package, 0) + int(fields[0])
    ranked = sorted(costs.items(), key=lambda item: -item[1])[:top]
    parts = [f"{package} {micros / 1000:.0f}" for package, micros in ranked]
    return f"{sum(costs.values()) / 1000:.0f} ms in all: " + ", ".join(parts)


def demo_archive(folder: Path, env: dict[str, str]) -> str:
    """A small real archive: `archiver demo` (one simulated day of 5 streams) in `folder`."""
    subprocess.run(
        [sys.executable, "-m", "archiver", "demo", "--streams", "5", "--days", "1"],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
    )
    return f"sqlite:///{folder / 'demo.db'}"


def checkout(revision: str, folder: Path) -> Path:
    """The package at `revision` (its migrations inside, as a wheel ships them), unpacked into
    `folder`: run with PYTHONPATH=folder, it is imported instead of this tree's."""
    folder.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "archiver", "migrations"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "migrations").rename(folder / "archiver" / "migrations")
    return folder


def load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def environment(folder: Path) -> dict[str, str]:
    """This environment without ARCHIVER_* settings, and with bytecode written (under `folder`,
    not the source tree) and read back: an installed package has it (pip compiles on install),
    an editable one under PYTHONDONTWRITEBYTECODE=1 compiles every module on every start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder / "bytecode")
    return env


def bench_startup(
    lines: list[str], runs: int, before: str | None = BEFORE, url: str | None = None
) -> None:
    """Add the section of the read-only commands' start to `lines` (at least five runs)."""
    runs = max(runs, 5)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as temporary:
        folder = Path(temporary)
        env = environment(folder)
        env["ARCHIVER_DATABASE_URL"] = url or demo_archive(folder, env)
        python = [sys.executable]
        commands = [(name, [*python, "-m", "archiver", *argv]) for name, argv in COMMANDS]
        cases = [Case(name, python + argv, env) for name, argv in BASELINES]
        cases += [Case(name, argv, env, TARGETS.get(argv[3], TARGET)) for name, argv in commands]
        uncached = dict(env, PYTHONDONTWRITEBYTECODE="1")
        uncached.pop("PYTHONPYCACHEPREFIX")
        cases.append(Case("archiver health, its bytecode not cached", commands[1][1], uncached))
        if before is not None:
            old = dict(env, PYTHONPATH=str(checkout(before, folder / "before")))
            cases += [Case(f"{name} at {before}", argv, old) for name, argv in commands]
        started_at = load()
        measure(cases, runs, folder)
        floor = min(cases[len(BASELINES) - 1].cpus)
        lines += [
            HEADING,
            "",
            f"- load average (1, 5, 15 min) before: {started_at}; after: {load()}",
            f"- archive: {'given' if url else 'a SQLite `archiver demo` of 5 streams, 1 day'}; "
            f"{runs} runs of each command after one warm-up run, all commands in turns; seconds. "
            "CPU is the process's own user + system time, which a busy machine inflates less "
            "than wall; the floor is the last baseline's CPU min (the libraries every reading "
            "command must import). Bytecode is cached (written in the warm-up run) as in an "
            "installed package (pip compiles on install), except in the row that says otherwise "
            "(an editable install under PYTHONDONTWRITEBYTECODE=1 compiles them on every start)."
            + (f" `at {before}`: the same command with the package of {before}." if before else ""),
            "",
            "| command | wall min | wall median | CPU min | CPU median | CPU min over the "
            "floor | target (wall min) |",
            "|---|---:|---:|---:|---:|---:|---|",
            *(case.row(floor) for case in cases),
            "",
            "Where each command's import time goes (`-X importtime`, one run; milliseconds of "
            "each module's own time, summed by top-level package):",
            "",
            *(
                f"- `{case.name}`: {import_breakdown(case, folder)}"
                for case in cases[len(BASELINES) :]
            ),
            "",
        ]


def main() -> int:
    from bench.common import machine
    from bench.results import merge

    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="runs per command (at least 5)")
    parser.add_argument("--before", default=BEFORE, help=f"a git revision (default {BEFORE})")
    parser.add_argument("--url", help="an existing archive instead of a demo one")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    lines: list[str] = []
    bench_startup(lines, args.runs, args.before, args.url)
    print("\n".join(lines))
    if not args.no_record:
        results = HERE / "RESULTS.md"
        stamp = [line for line in machine() if line]
        results.write_text(merge(results, "\n".join(lines), stamp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
