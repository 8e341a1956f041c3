"""The path a new user takes, with the user's own files: the shipped example settings, the
environment compose renders, read-only commands that only read, and one writer at a time."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from archiver.simulator import SimConfig, Simulator
from archiver.simulator.server import Faults
from archiver.store import db
from archiver.store.tables import sync_runs
from tests.conftest import postgres_admin_url
from tests.processes import Process, free_port, service_cycles, wait_for
from tests.processes import run_archiver as archiver
from tests.simhelpers import TOKEN

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "archiver.env.example"

pytestmark = pytest.mark.e2e


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(SimConfig(streams=6, seed=3), token=TOKEN, clock="real") as sim:
        yield sim


def fill_example(folder: Path, **values: str) -> Path:
    """The example settings copied verbatim to `.env`, then only `values` filled in."""
    lines = EXAMPLE.read_text().splitlines()
    for name, value in values.items():
        matches = [i for i, line in enumerate(lines) if line.startswith(f"{name}=")]
        assert len(matches) == 1, name
        lines[matches[0]] = f"{name}={value}"
    path = folder / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_shipped_example_settings_work_as_a_new_user_uses_them(
    tmp_path: Path, simulator: Simulator
) -> None:
    shutil.copy(EXAMPLE, tmp_path / ".env")
    # As shipped (no token yet), a command that needs no token runs.
    first = archiver(["db", "upgrade"], tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "archiver.db").unlink()
    fill_example(tmp_path, ARCHIVER_API_TOKEN=TOKEN, ARCHIVER_API_BASE_URL=simulator.url)
    for command in (["db", "upgrade"], ["backfill", "--dry-run"], ["backfill"], ["status"]):
        result = archiver(command, tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert TOKEN not in result.stdout + result.stderr
    assert (tmp_path / "archiver.db").is_file()  # the example's own database URL
    health = archiver(["health"], tmp_path)
    assert health.returncode == 0, health.stderr
    assert health.stdout.startswith("healthy: last successful cycle")


def _rendered_archiver_environment(folder: Path) -> dict[str, str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("docker-compose is missing: .ci/run installs it")
        pytest.skip("docker-compose is not installed")
    shutil.copy(ROOT / "docker-compose.yml", folder)
    rendered = subprocess.run(
        [binary, "config"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout
    spec: dict[str, Any] = yaml.safe_load(rendered)
    environment = spec["services"]["archiver"]["environment"]
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(k): "" if v is None else str(v) for k, v in environment.items()}


@pytest.mark.postgres
def test_the_environment_compose_renders_starts_the_service(
    tmp_path: Path, simulator: Simulator, start_service: Callable[..., Process]
) -> None:
    compose_dir = tmp_path / "compose"
    compose_dir.mkdir()
    fill_example(compose_dir, ARCHIVER_API_TOKEN=TOKEN, ARCHIVER_API_BASE_URL=simulator.url)
    env = _rendered_archiver_environment(compose_dir)
    assert env["ARCHIVER_NOW"] == ""  # the example's empty values reach the service as such
    # No Docker network here: the `db` host is this machine's PostgreSQL, with the same user
    # and password, in a database of the test's own.
    url = sa.make_url(env["ARCHIVER_DATABASE_URL"])
    assert url.host == "db"
    name = f"archiver_compose_{os.getpid()}"
    admin = sa.create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if (
            conn.execute(
                sa.text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": url.username}
            ).first()
            is None
        ):
            conn.execute(sa.text(f"CREATE ROLE \"{url.username}\" LOGIN PASSWORD '{url.password}'"))
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER "{url.username}"'))
    admin_host = sa.make_url(postgres_admin_url()).host or "127.0.0.1"
    local = url.set(host=admin_host, port=5432, database=name).render_as_string(hide_password=False)
    env["ARCHIVER_DATABASE_URL"] = local
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        env["ARCHIVER_METRICS_PORT"] = str(sock.getsockname()[1])
    try:
        process = start_service("compose", local, **env)
        wait_for(lambda: service_cycles(local) >= 1, timeout=120, what="a cycle")
        assert "cycle done: service:" in process.text()
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(15) == 0
        assert TOKEN not in process.text()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


READ_ONLY = [
    ["status"],
    ["status", "--json"],
    ["health"],
    ["report"],
    ["export", "--table", "stream_usage"],
    ["streams", "list"],
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_commands_on_a_missing_archive_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "typo.db"
    result = archiver(command, tmp_path, ARCHIVER_DATABASE_URL=f"sqlite:///{path}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"archiver: error: no archive at {path}; run `archiver db upgrade` or "
        "`archiver backfill` first"
    ]
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READ_ONLY[:4], ids=" ".join)
def test_read_only_commands_on_an_archive_behind_name_db_upgrade(
    tmp_path: Path, command: list[str], database_url: str
) -> None:
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        result = archiver(command, tmp_path, ARCHIVER_DATABASE_URL=database_url)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert "run `archiver db upgrade`" in lines[0]
        assert db.current_revision(engine) == "0001"  # nothing was migrated
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE alembic_version SET version_num = '{db.head_revision()}'")
            )
        engine.dispose()


def test_an_archive_newer_than_the_code_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for command in (["status"], ["db", "upgrade"], ["sync"]):
        result = archiver(command, tmp_path, ARCHIVER_DATABASE_URL=url, ARCHIVER_API_TOKEN=TOKEN)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "archiver: error: the archive is at schema revision 9999, newer than this archiver "
            f"knows (latest {db.head_revision()}): upgrade archiver"
        ]


def test_health_never_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    os.chmod(tmp_path / "a.db", 0o444)
    before = (tmp_path / "a.db").read_bytes()
    result = archiver(["health"], tmp_path, ARCHIVER_DATABASE_URL=url)
    assert result.returncode == 1
    assert result.stderr.strip() == "archiver: unhealthy: no successful cycle yet"
    assert (tmp_path / "a.db").read_bytes() == before


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_writers_refuse_an_in_memory_archive(tmp_path: Path, url: str) -> None:
    for command in (["sync"], ["backfill"], ["db", "upgrade"]):
        result = archiver(command, tmp_path, ARCHIVER_DATABASE_URL=url, ARCHIVER_API_TOKEN=TOKEN)
        assert result.returncode == 1, command
        assert "in-memory SQLite database keeps nothing" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_one_writer_sync_beside_the_service_exits_and_dead_runs_are_interrupted(
    tmp_path: Path, simulator: Simulator, start_service: Callable[..., Process]
) -> None:
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    env = {
        "ARCHIVER_DATABASE_URL": url,
        "ARCHIVER_API_BASE_URL": simulator.url,
        "ARCHIVER_API_TOKEN": TOKEN,
    }
    # A run left `running` by a `sync` killed with SIGKILL mid-cycle (slow vendor answers).
    simulator.faults = Faults(latency_ms=400)
    log = (tmp_path / "killed.log").open("wb")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    killed = subprocess.Popen(
        [sys.executable, "-m", "archiver", "sync"],
        cwd=tmp_path,
        env={**clean, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    engine = db.make_engine(url)

    def running() -> bool:
        try:
            with engine.connect() as conn:
                return (
                    conn.execute(
                        sa.select(sync_runs.c.id).where(sync_runs.c.status == "running")
                    ).first()
                    is not None
                )
        except sa.exc.OperationalError:  # not migrated yet
            return False

    wait_for(running, what="the sync's cycle")
    killed.kill()
    killed.wait(10)
    log.close()
    simulator.faults = Faults()
    assert running()
    service = start_service("service", url, ARCHIVER_SCHEDULE_INTERVAL_SECONDS="3600")
    wait_for(lambda: service_cycles(url) >= 1, what="the catch-up cycle")
    with engine.connect() as conn:
        statuses = [
            row.status for row in conn.execute(sa.select(sync_runs).order_by(sync_runs.c.id))
        ]
    assert statuses[0] == "interrupted"
    assert "running" not in statuses

    second = archiver(["sync"], tmp_path, **env)
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "archiver: error: another archiver is writing to this database (pid "
    )
    assert str(service.popen.pid) in lines[0]
    status = archiver(["status"], tmp_path, ARCHIVER_SCHEDULE_INTERVAL_SECONDS="3600", **env)
    assert f"service:       active, pid {service.popen.pid} on host" in status.stdout
    assert "(every 3600 s)" in status.stdout
    service.popen.send_signal(signal.SIGTERM)
    assert service.popen.wait(15) == 0
    assert "no service holding the lock" in archiver(["status"], tmp_path, **env).stdout
    after = archiver(["sync"], tmp_path, **env)
    assert after.returncode == 0, after.stderr
    engine.dispose()


def test_a_taken_metrics_port_is_one_line_and_the_service_stands_by(
    tmp_path: Path, start_service: Callable[..., Process]
) -> None:
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        first = start_service("first", url, ARCHIVER_SCHEDULE_INTERVAL_SECONDS="3600")
        wait_for(lambda: "active: holding" in first.text(), what="first active")
        second = start_service("second", url, ARCHIVER_METRICS_PORT=port)
        wait_for(lambda: "standby: another archiver is active" in second.text(), what="standby")
    text = second.text()
    assert f"metrics not served: cannot listen on 127.0.0.1:{port}" in text
    assert "Traceback" not in text
    assert second.popen.poll() is None
    # A standby with a free port serves its metrics, saying it is not the active one.
    free = str(free_port())
    third = start_service("third", url, ARCHIVER_METRICS_PORT=free)
    wait_for(lambda: "standby: another archiver is active" in third.text(), what="third standby")
    metrics = httpx.get(f"http://127.0.0.1:{free}/metrics", timeout=10).text
    assert "archiver_active 0.0" in metrics.splitlines()
    for process in (first, second, third):
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(15) == 0
