"""The package list in pyproject.toml ships every package on disk, migrations included."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_on_disk_is_shipped() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "archiver").rglob("__init__.py")
    }
    mapped = {"archiver.migrations": "migrations"}
    assert config["package-dir"] == mapped
    for init in (ROOT / "migrations").rglob("__init__.py"):
        on_disk.add(".".join(("archiver", *init.parent.relative_to(ROOT).parts)))
    assert listed == on_disk
    # Alembic needs the template and every revision module beside its environment.
    assert config["package-data"]["archiver.migrations"] == ["script.py.mako"]
    assert (ROOT / "migrations" / "script.py.mako").is_file()
