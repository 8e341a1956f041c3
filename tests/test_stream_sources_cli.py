"""The stream sources as a user meets them: backfill says when no stream is tracked, and
`streams list` shows the publish tokens' patterns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.simulator import SimConfig, Simulator
from tests.processes import Ran
from tests.simhelpers import TOKEN

NOW = "2026-11-20T12:20:00Z"
NO_STREAMS = "no stream is tracked, so no per-stream history is saved"


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(streams=12, seed=4, exact_token_streams=2)
    with Simulator(config, token=TOKEN, start=datetime(2026, 11, 20, 12, 20, tzinfo=UTC)) as sim:
        yield sim


def test_backfill_says_in_one_line_when_no_stream_is_tracked(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran]
) -> None:
    env = {"ARCHIVER_API_BASE_URL": simulator.url, "ARCHIVER_NOW": NOW}
    dry = cli(["backfill", "--dry-run"], tmp_path, **env)
    assert dry.returncode == 0, dry.stderr
    (line,) = [x for x in dry.stderr.splitlines() if NO_STREAMS in x]
    sources = (
        "ARCHIVER_STREAMS",
        "ARCHIVER_PUBLISH_TOKENS",
        "ARCHIVER_FEEDS",
        "ARCHIVER_WEBHOOK_PORT",
    )
    for source in sources:
        assert source in line
    named = cli(["backfill", "--dry-run"], tmp_path, ARCHIVER_STREAMS="a", **env)
    assert NO_STREAMS not in named.stderr
    # Nothing tracked, no source that could tell a name: the real backfill says so too.
    quiet = {
        **env,
        "ARCHIVER_API_TOKEN": TOKEN,
        "ARCHIVER_DISCOVERY": "false",
        "ARCHIVER_FEEDS": "false",  # the feeds would name every stream
    }
    empty = cli(["backfill"], tmp_path, **quiet, ARCHIVER_PUBLISH_TOKENS="false")
    assert empty.returncode == 0, empty.stderr
    assert NO_STREAMS in empty.stderr


def test_backfill_tracks_exact_token_names_and_lists_the_patterns(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran]
) -> None:
    env = {
        "ARCHIVER_API_BASE_URL": simulator.url,
        "ARCHIVER_NOW": NOW,
        "ARCHIVER_API_TOKEN": TOKEN,
        "ARCHIVER_DISCOVERY": "false",
    }
    backfill = cli(["backfill"], tmp_path, **env)
    assert backfill.returncode == 0, backfill.stderr
    assert NO_STREAMS not in backfill.stderr
    listing = cli(["streams", "list"], tmp_path, **env).stdout
    lines = {line.split()[0]: line for line in listing.splitlines() if line.strip()}
    assert " token " in lines["stream-0000"]
    assert lines["stream-0000"].endswith("studio (stream-[0-9]+)")
    assert "2 streams" in listing
    assert "publish token patterns (3):" in listing
    assert "numbered ([0-9]+)" in listing


def test_status_shows_the_explained_share_and_warns(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran]
) -> None:
    env = {
        "ARCHIVER_API_BASE_URL": simulator.url,
        "ARCHIVER_NOW": NOW,
        "ARCHIVER_API_TOKEN": TOKEN,
        "ARCHIVER_DISCOVERY": "false",
        # Feeds off: the warning is about usage that no source named (the feeds name all).
        "ARCHIVER_FEEDS": "false",
    }
    assert cli(["backfill"], tmp_path, **env).returncode == 0
    status = cli(["status"], tmp_path, **env)
    assert status.returncode == 0, status.stderr
    (line,) = [x for x in status.stdout.splitlines() if x.startswith("explained:")]
    share = float(line.split()[1].rstrip("%"))
    assert 0 < share < 50  # 2 of 12 streams are named by tokens
    assert "is explained by no archived stream (threshold 5%)" in status.stderr
    relaxed = cli(["status"], tmp_path, **env, ARCHIVER_UNATTRIBUTED_WARN_PERCENT="100")
    assert "warning" not in relaxed.stderr
    payload = json.loads(cli(["status", "--json"], tmp_path, **env).stdout)
    assert abs(payload["attribution"]["explained_share"] * 100 - share) < 0.1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ARCHIVER_WEBHOOK_PORT": "8080"}, "ARCHIVER_WEBHOOK_PORT needs ARCHIVER_WEBHOOK_SECRET"),
        (
            {"ARCHIVER_WEBHOOK_PORT": "8080", "ARCHIVER_WEBHOOK_SECRET": "not base64 !"},
            "invalid setting ARCHIVER_WEBHOOK_SECRET: must be the base64 webhook secret",
        ),
    ],
)
def test_webhook_settings_are_checked(
    tmp_path: Path, env: dict[str, str], expected: str, cli: Callable[..., Ran]
) -> None:
    result = cli(["status"], tmp_path, **env)
    assert result.returncode == 1
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not base64 !" not in result.stderr


def test_simulate_webhook_options_are_checked(tmp_path: Path, cli: Callable[..., Ran]) -> None:
    result = cli(["simulate", "--port", "0", "--webhook-url", "http://127.0.0.1:1/w"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "archiver: error: --webhook-url needs --webhook-secret (base64, as the dashboard shows)"
    )
