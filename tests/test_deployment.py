"""The container image, compose file and systemd unit, checked as far as this machine allows."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line.removesuffix("\\").strip() + " "
        if line.endswith("\\"):
            continue
        instruction, _, rest = pending.strip().partition(" ")
        lines.append((instruction.upper(), rest.strip()))
        pending = ""
    return lines


@pytest.mark.e2e
def test_compose_file_validates_with_docker_compose(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        if in_ci():
            pytest.fail("docker-compose is missing: .ci/run installs it")
        pytest.skip("docker-compose is not installed")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    # With the .env README asks for (tests/test_deployment_files.py: without one).
    shutil.copy(ROOT / "config" / "archiver.env.example", tmp_path / ".env")
    for profile in ([], ["--profile", "demo"], ["--profile", "grafana"]):
        result = subprocess.run(
            [binary, *profile, "config", "-q"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def test_compose_services_volumes_health_checks_and_commands() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"db", "archiver", "demo", "grafana"}
    assert services["grafana"]["profiles"] == ["grafana"]
    db = services["db"]
    assert db["image"].startswith("postgres:")
    assert "pgdata:/var/lib/postgresql/data" in db["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert "pgdata" in spec["volumes"]
    app = services["archiver"]
    assert app["command"] == ["archiver", "run"]
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["healthcheck"]["test"] == ["CMD", "archiver", "health"]
    assert "env_file" not in app  # a missing .env must not stop compose
    assert app["environment"]["ARCHIVER_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "profiles" not in app
    demo = services["demo"]
    assert demo["profiles"] == ["demo"]
    assert demo["environment"]["ARCHIVER_API_BASE_URL"].startswith("http://127.0.0.1:")
    assert "archiver simulate" in demo["command"][-1]
    assert "archiver run" in demo["command"][-1]
    # Simulated streams never reach the production archive.
    assert (
        demo["environment"]["ARCHIVER_DATABASE_URL"] != app["environment"]["ARCHIVER_DATABASE_URL"]
    )
    assert demo["environment"]["ARCHIVER_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert app["environment"]["ARCHIVER_METRICS_ADDRESS"] == "0.0.0.0"


def test_dockerfile_shape() -> None:
    steps = dockerfile()
    # Installed as a user would install it, so the image proves the packaged migrations work.
    assert ("RUN", "pip install --no-cache-dir .") in steps
    assert steps[0][0] == "FROM"
    assert steps[0][1].startswith("python:3.11")
    assert steps[0][1].endswith("-slim")
    users = [args for op, args in steps if op == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert ("CMD", '["archiver", "run"]') in steps
    health = next(args for op, args in steps if op == "HEALTHCHECK")
    assert health.endswith('CMD ["archiver", "health"]')
    for op, args in steps:
        if op == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY source {source} is missing"


@pytest.mark.e2e
def test_dockerfile_commands_work_in_a_fresh_virtual_environment(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    steps = dockerfile()
    for op, args in steps:
        if op == "COPY":
            *sources, target = args.split()
            for source in sources:
                destination = app / target if target not in ("./", ".") else app
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(ROOT / source, destination)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")},
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    pip_steps = [args for op, args in steps if op == "RUN" and args.startswith("pip install")]
    assert pip_steps
    for command in pip_steps:
        result = subprocess.run(
            shlex.split(command),
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-2000:]
    data = tmp_path / "data"
    data.mkdir()
    # The package and its migrations come from site-packages, not from the copied tree.
    where = subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-c",
            "from archiver.store import db; print(db.migrations_dir())",
        ],
        cwd=data,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(env_dir)), where
    env["ARCHIVER_DATABASE_URL"] = f"sqlite:///{data / 'archiver.db'}"
    archiver = str(env_dir / "bin" / "archiver")
    assert (
        subprocess.run(
            [archiver, "--help"], env=env, cwd=data, check=False, capture_output=True
        ).returncode
        == 0
    )
    upgrade = subprocess.run(
        [archiver, "db", "upgrade"], env=env, cwd=data, check=False, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    health = subprocess.run(
        [archiver, "health"], env=env, cwd=data, check=False, capture_output=True, text=True
    )
    assert health.returncode == 1
    assert health.stderr.strip() == "archiver: unhealthy: no successful cycle yet"
    run = subprocess.run(
        [archiver, "run"],
        env=env,
        cwd=data,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "ARCHIVER_API_TOKEN is not set" in run.stderr
    assert sys.executable  # the test's own interpreter played no part above


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "config" / "archiver.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("/bin/archiver run")
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 10
    assert service["Restart"] == "on-failure"
    assert service["User"] != "root"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
