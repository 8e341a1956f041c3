"""Deployment files agree with README: compose without .env, the demo in PostgreSQL, systemd."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from archiver.config import Settings
from tests.conftest import postgres_admin_url

ROOT = Path(__file__).resolve().parents[1]
# What compose sets itself for the archiver service, whatever .env says.
FIXED = {"ARCHIVER_DATABASE_URL", "ARCHIVER_METRICS_PORT", "ARCHIVER_METRICS_ADDRESS"}
PROFILES: list[list[str]] = [[], ["--profile", "demo"], ["--profile", "grafana"]]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("docker-compose is missing: .ci/run installs it")
        pytest.skip("docker-compose is not installed")
    return binary


def resolved(tmp_path: Path, profile: list[str], env: dict[str, str]) -> dict[str, Any]:
    """`docker-compose config` in a folder with the compose file and no .env at all."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    assert not (tmp_path / ".env").exists()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVER_", "GRAFANA_"))}
    result = subprocess.run(
        [docker_compose(), *profile, "config"],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


@pytest.mark.e2e
@pytest.mark.parametrize("profile", PROFILES, ids=["default", "demo", "grafana"])
def test_every_compose_profile_works_without_env_file(tmp_path: Path, profile: list[str]) -> None:
    spec = resolved(tmp_path, profile, {})
    app = spec["services"]["archiver"]["environment"]
    # Unset settings arrive empty, which archiver reads as "not set".
    assert app["ARCHIVER_API_TOKEN"] == ""
    assert app["ARCHIVER_DATABASE_URL"].endswith("@db:5432/archiver")
    if profile == ["--profile", "demo"]:
        demo = spec["services"]["demo"]
        assert demo["environment"]["ARCHIVER_DATABASE_URL"].endswith("@db:5432/archiver_demo")
        assert demo["depends_on"]["db"]["condition"] == "service_healthy"
    if profile == ["--profile", "grafana"]:
        grafana = spec["services"]["grafana"]["environment"]
        assert grafana["GRAFANA_ARCHIVE_DB_NAME"] == "archiver"


@pytest.mark.e2e
def test_compose_passes_settings_from_the_environment(tmp_path: Path) -> None:
    # .env and the shell are both read by compose for ${...}; the shell is the one we can set.
    env = {"ARCHIVER_API_TOKEN": "tok-12345678", "GRAFANA_ARCHIVE_DB_NAME": "archiver_demo"}
    spec = resolved(tmp_path, ["--profile", "grafana"], env)
    assert spec["services"]["archiver"]["environment"]["ARCHIVER_API_TOKEN"] == "tok-12345678"
    grafana = spec["services"]["grafana"]["environment"]
    assert grafana["GRAFANA_ARCHIVE_DB_NAME"] == "archiver_demo"


def test_compose_passes_every_setting_and_empty_ones_mean_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = compose()["services"]["archiver"]["environment"]
    every = {f"ARCHIVER_{name.upper()}" for name in Settings.model_fields}
    assert set(app) == every
    passed = set(app) - FIXED
    for name in passed:
        assert app[name] == f"${{{name}:-}}"
    # What the container sees with no .env: every passed setting empty, the defaults apply.
    for name in passed:
        monkeypatch.setenv(name, "")
    monkeypatch.chdir(ROOT / "config")  # no .env there
    assert Settings() == Settings.model_validate({})


def test_demo_fills_its_own_database_on_the_compose_postgresql() -> None:
    services = compose()["services"]
    demo, app = services["demo"], services["archiver"]
    demo_url = sa.make_url(demo["environment"]["ARCHIVER_DATABASE_URL"])
    app_url = sa.make_url(app["environment"]["ARCHIVER_DATABASE_URL"])
    assert (demo_url.host, demo_url.port) == (app_url.host, app_url.port) == ("db", 5432)
    # Simulated streams never reach the production archive.
    assert demo_url.database == "archiver_demo" != app_url.database
    assert demo["depends_on"]["db"]["condition"] == "service_healthy"
    grafana = services["grafana"]["environment"]
    assert grafana["GRAFANA_ARCHIVE_DB_NAME"] == f"${{GRAFANA_ARCHIVE_DB_NAME:-{app_url.database}}}"
    assert "demodata" not in compose()["volumes"]


def test_demo_command_creates_its_database_once(tmp_path: Path) -> None:
    """The demo's first step, run as written against a real PostgreSQL, twice."""
    demo = compose()["services"]["demo"]
    script = demo["command"][-1]
    creating = script.split(" && ")[0]
    argv = shlex.split(creating)
    assert argv[:2] == ["python", "-c"]
    admin = sa.make_url(postgres_admin_url())
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    env = {
        **os.environ,
        "PGHOST": admin.host or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        "PGUSER": admin.username or "postgres",
        "PGDATABASE": admin.database or "postgres",
    }
    if admin.password:
        env["PGPASSWORD"] = admin.password
    python = sys.executable
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS archiver_demo WITH (FORCE)"))
        for _ in range(2):
            result = subprocess.run(
                [python, *argv[1:]], env=env, capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stderr
        with engine.connect() as conn:
            names = conn.execute(sa.text("SELECT datname FROM pg_database")).scalars().all()
        assert "archiver_demo" in names
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS archiver_demo WITH (FORCE)"))
        engine.dispose()


def test_grafana_reads_the_database_name_from_the_environment() -> None:
    path = ROOT / "config" / "grafana" / "provisioning" / "datasources" / "archiver.yaml"
    (source,) = yaml.safe_load(path.read_text())["datasources"]
    assert source["jsonData"]["database"] == "${GRAFANA_ARCHIVE_DB_NAME}"
    assert "GRAFANA_ARCHIVE_DB_NAME" in compose()["services"]["grafana"]["environment"]


def unit() -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read(ROOT / "config" / "archiver.service")
    return parsed


def test_systemd_unit_runs_what_readme_installs_and_creates_its_folder() -> None:
    readme = (ROOT / "README.md").read_text()
    install = re.search(r"python3 -m venv (\S+) && (\S+)/bin/pip install dist/", readme)
    assert install is not None
    prefix = install.group(1)
    assert install.group(2) == prefix
    service = unit()["Service"]
    assert service["ExecStart"] == f"{prefix}/bin/archiver run"
    # systemd creates /var/lib/archiver for the unit's user: the working folder.
    assert service["StateDirectory"] == "archiver"
    assert service["WorkingDirectory"] == "/var/lib/archiver"
    assert service["User"] != "root"


def test_systemd_unit_comment_agrees_with_readme_on_a_lost_lock() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "loses its lock" in readme
    assert "it does not exit" in readme
    comments = " ".join(
        line.lstrip("# ")
        for line in (ROOT / "config" / "archiver.service").read_text().splitlines()
        if line.startswith("#")
    )
    assert re.search(r"lost lock[^.]*is no exit", comments), comments
    assert not re.search(r"\(.*lost lock.*\) restarts", comments)


def test_systemd_unit_verifies_but_for_the_missing_install() -> None:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        [binary, "verify", str(ROOT / "config" / "archiver.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "/opt/archiver/bin/archiver is not executable" not in line
    ]
    assert complaints == []
