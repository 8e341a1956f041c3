"""The `archiver` command as a user runs it: one-line errors, exit codes.

Commands run in-process through the `cli` fixture (the same `main()`); the tests whose point
is the process itself (`python -m archiver`, signals, a closed pipe, the demo) run real
processes and are marked e2e.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.cli import build_parser, main
from archiver.simulator import SimConfig, Simulator
from tests.processes import Ran
from tests.processes import run_archiver as run
from tests.simhelpers import TOKEN

NOW = "2026-11-20T12:20:00Z"
COMMANDS = [
    [],
    ["db"],
    ["db", "upgrade"],
    ["sync"],
    ["backfill"],
    ["streams"],
    ["streams", "add"],
    ["streams", "remove"],
    ["streams", "list"],
    ["streams", "import"],
    ["streams", "discover"],
    ["simulate"],
    ["run"],
    ["status"],
    ["health"],
    ["demo"],
    ["report"],
    ["export"],
]


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(streams=12, seed=4, unreportable_streams=1)
    start = datetime(2026, 11, 20, 12, 20, tzinfo=UTC)
    with Simulator(config, token=TOKEN, start=start) as sim:
        yield sim


def exit_code(args: list[str]) -> int | str | None:
    """`main(args)` in this process, for what argparse decides alone (help, usage errors)."""
    with pytest.raises(SystemExit) as exited:
        main(args)
    return exited.value.code


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "archiver")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code([*command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: archiver {' '.join(command)}".rstrip())


def command_paths(parser: argparse.ArgumentParser, prefix: list[str]) -> Iterator[list[str]]:
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, sub in action.choices.items():
                yield from command_paths(sub, [*prefix, word])


def test_the_help_test_covers_every_command() -> None:
    # A command added later gets its --help checked too.
    assert sorted(command_paths(build_parser(), [])) == sorted(COMMANDS)


@pytest.mark.e2e
def test_help_and_version_as_a_real_process(tmp_path: Path) -> None:
    # The one real-process check of the parser: `python -m archiver` reaches the same main().
    result = run(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: archiver")
    assert "backfill" in result.stdout
    version = run(["--version"], tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("archiver ")


# Mistakes argparse catches before any setting is read: (arguments, a phrase of the line).
USAGE_MISTAKES: list[tuple[list[str], str]] = [
    (["backfill", "--start", "yesterday"], "invalid --start 'yesterday'"),
    (["backfill", "--end", "2026-13-01"], "invalid --end"),
    (["backfill", "--resolution", "Week"], "unknown resolution 'Week'"),
    (["simulate", "--error-rate", "2"], "not a fraction between 0 and 1"),
    (["simulate", "--session-minutes", "5"], "not SHORTEST,LONGEST"),
    (["simulate", "--graphql-max-per-page", "0"], "not a whole number from 1 to 10000"),
    (["nope"], "invalid choice: 'nope'"),
    ([], "the following arguments are required: COMMAND"),
    (["streams"], "the following arguments are required: COMMAND"),
]


@pytest.mark.parametrize(
    ("args", "expected"), USAGE_MISTAKES, ids=[" ".join(a) or "archiver" for a, _ in USAGE_MISTAKES]
)
def test_usage_mistakes_are_one_line(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert expected in line
    assert line.startswith("archiver")
    assert line.endswith("--help)")


def test_db_upgrade_on_a_fresh_sqlite_file(tmp_path: Path, cli: Callable[..., Ran]) -> None:
    result = cli(["db", "upgrade"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "is at revision" in result.stdout
    assert (tmp_path / "archiver.db").is_file()


@pytest.mark.postgres
def test_db_upgrade_on_postgresql(
    tmp_path: Path, postgres_url: str, cli: Callable[..., Ran]
) -> None:
    result = cli(["db", "upgrade"], tmp_path, ARCHIVER_DATABASE_URL=postgres_url)
    assert result.returncode == 0, result.stderr
    assert "is at revision" in result.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ARCHIVER_DATABASE_URL": "mysql://x/y"}, "invalid setting ARCHIVER_DATABASE_URL"),
        (
            {"ARCHIVER_DATABASE_URL": "postgresql://nobody:pw@127.0.0.1:1/none"},
            "cannot reach the database",
        ),
        ({"ARCHIVER_DATABASE_URL": "sqlite:////no/such/dir/a.db"}, "cannot reach the database"),
    ],
)
def test_database_problems_are_one_line(
    tmp_path: Path, env: dict[str, str], expected: str, cli: Callable[..., Ran]
) -> None:
    result = cli(["db", "upgrade"], tmp_path, **env)
    assert result.returncode != 0
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert "pw@" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["backfill", "--start", "2026-11-20", "--end", "2026-11-19"],
            "--start must be before --end",
        ),
        (["backfill", "--streams", "a--b"], "refused"),
        (["streams", "import", "/no/such/file"], "cannot read /no/such/file"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, args: list[str], expected: str, cli: Callable[..., Ran]
) -> None:
    result = cli(args, tmp_path, ARCHIVER_API_TOKEN="x-token-0123")
    assert result.returncode != 0
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_commands_that_call_the_vendor_need_the_token(
    tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    result = cli(["sync"], tmp_path)
    assert result.returncode != 0
    assert "ARCHIVER_API_TOKEN is not set" in result.stderr


def test_a_wrong_token_names_the_setting_and_never_shows_the_token(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran]
) -> None:
    secret = "wrong-token-0123456789"
    result = cli(
        ["sync"],
        tmp_path,
        ARCHIVER_API_TOKEN=secret,
        ARCHIVER_API_BASE_URL=simulator.url,
        ARCHIVER_NOW=NOW,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("archiver: error:")
    assert "check ARCHIVER_API_TOKEN" in last
    assert secret not in result.stderr + result.stdout
    assert secret not in (tmp_path / "archiver.db").read_bytes().decode("latin-1")


def test_streams_add_list_import_remove(tmp_path: Path, cli: Callable[..., Ran]) -> None:
    (tmp_path / "names.txt").write_text("# comment\nfeed_1\n\n360\nbad*name\n")
    added = cli(["streams", "add", "main", "360"], tmp_path)
    assert added.returncode == 0
    assert "tracking main" in added.stdout
    imported = cli(["streams", "import", "names.txt"], tmp_path)
    assert imported.returncode == 1  # one name refused
    assert "stream 'bad*name' refused" in imported.stderr
    assert "already tracked: 360" in imported.stdout
    listing = cli(["streams", "list"], tmp_path).stdout
    assert "feed_1" in listing
    assert "refused" in listing
    assert "4 streams" in listing
    removed = cli(["streams", "remove", "main", "ghost"], tmp_path)
    assert "no longer tracking main" in removed.stdout
    assert "'ghost' was not tracked" in removed.stderr
    assert removed.returncode == 1


def test_backfill_dry_run_calls_nothing(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran]
) -> None:
    result = cli(
        ["backfill", "--dry-run", "--start", "2026-11-01", "--resolution", "Hour"],
        tmp_path,
        ARCHIVER_API_BASE_URL=simulator.url,
        ARCHIVER_NOW=NOW,
        ARCHIVER_STREAMS="a,b",
    )
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout
    assert (
        "stream_usage       Hour       1 requests  2026-11-13 13:00 .. 2026-11-20 13:00"
        in result.stdout
    )
    assert "already purged by the vendor" in result.stderr
    assert simulator.stats_payload()["api_requests"] == 0


def test_backfill_then_sync_against_the_simulator(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran]
) -> None:
    env = {"ARCHIVER_API_TOKEN": TOKEN, "ARCHIVER_API_BASE_URL": simulator.url, "ARCHIVER_NOW": NOW}
    backfill = cli(["backfill"], tmp_path, **env)
    assert backfill.returncode == 0, backfill.stderr
    assert "backfill:" in backfill.stdout
    # Nothing purged, and the quiet first hours the vendor surely still held when it
    # answered are quiet hours, not gaps (README: "The oldest hour the vendor holds").
    assert "0 gaps" in backfill.stdout
    assert "lost data" not in backfill.stderr
    sync = cli(["sync"], tmp_path, **env)
    assert sync.returncode == 0, sync.stderr
    assert "requests ok" in sync.stdout


@pytest.mark.e2e
def test_demo_runs_end_to_end_in_a_clean_folder(tmp_path: Path) -> None:
    result = run(["demo", "--streams", "3", "--days", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "25/25 cycles" in result.stdout
    assert "top countries" in result.stdout
    assert "ARCHIVER_API_TOKEN" in result.stdout
    status = run(["status", "--json"], tmp_path, ARCHIVER_DATABASE_URL="sqlite:///demo.db")
    assert status.returncode == 0, status.stderr
    assert '"gaps": 0' in status.stdout
    report = run(
        ["report", "--by", "day", "--from", "2000-01-01"],
        tmp_path,
        ARCHIVER_DATABASE_URL="sqlite:///demo.db",
    )
    assert report.returncode == 0
    assert report.stdout.strip().splitlines()[-1].startswith("total")


@pytest.mark.e2e
def test_simulate_serves_until_stopped(tmp_path: Path) -> None:
    # Regression: `simulate` once bound its port twice and died with "Address already in use".
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archiver",
            "simulate",
            "--port",
            "0",
            "--clock",
            "manual",
            "--start",
            "2026-11-20T12:00:00Z",
        ],
        cwd=tmp_path,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" on ")[1].split(" ")[0]
        import httpx

        assert httpx.get(f"{url}/_sim/clock").json()["now"] == "2026-11-20T12:00:00Z"
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(10)
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()
        process.stdout.close() if process.stdout else None
        process.stderr.close()


@pytest.mark.e2e
def test_export_into_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    # Regression: `archiver export ... | head -1` printed a BrokenPipeError traceback.
    assert (
        run(["streams", "add", *[f"stream-name-{i:05d}" for i in range(3000)]], tmp_path).returncode
        == 0
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    result = subprocess.run(
        f"{sys.executable} -m archiver export --table tracked_streams --format jsonl | head -1",
        shell=True,
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.stdout.count("\n") == 1
    assert "Traceback" not in result.stderr
