"""The core stands alone: the planner without HTTP or settings, the simulator without the client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest


def _imported(module: str) -> set[str]:
    # A fresh interpreter: in this one, other tests have imported everything already.
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_the_planner_imports_neither_the_http_layer_nor_pydantic_nor_the_settings() -> None:
    loaded = _imported("archiver.rules.plan")
    assert "archiver.vocabulary" in loaded
    libraries = ("httpx", "pydantic", "pydantic_core", "pydantic_settings")
    forbidden = [
        m
        for m in loaded
        if m.split(".")[0] in libraries
        or m in ("archiver.api", "archiver.config")
        or m.startswith("archiver.api.")
    ]
    assert sorted(forbidden) == []


def test_the_simulator_keeps_its_own_copy_of_the_vendor_rules() -> None:
    loaded = _imported("archiver.simulator")
    assert "archiver.vocabulary" not in loaded
    assert sorted(m for m in loaded if m == "archiver.api" or m.startswith("archiver.api.")) == []


# The layers of the package, lowest first. A module may import its own layer or a lower one,
# never a higher one: so one cycle can be followed from `cli` down through `cycle` into `api`
# and `store` without climbing back (docs/architecture.md draws the same picture).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("archiver", "archiver.errors", "archiver.text"),
    ("archiver.timeutil",),
    ("archiver.vocabulary",),
    ("archiver.rules",),
    ("archiver.setting_names", "archiver.config"),
    ("archiver.api",),
    ("archiver.store",),
    ("archiver.cycle",),
    ("archiver.reading",),
    ("archiver.observability", "archiver.service", "archiver.demo"),
    ("archiver.cli", "archiver.__main__"),
)
PACKAGE = Path(__file__).resolve().parents[1] / "archiver"


def _layer_of(module: str) -> int:
    # The longest matching prefix names the room; `archiver` alone is the package's version.
    best = (-1, -1)
    for index, rooms in enumerate(LAYERS):
        for room in rooms:
            if module == room or (room != "archiver" and module.startswith(room + ".")):
                best = max(best, (len(room), index))
            elif room == "archiver" and module == "archiver":
                best = max(best, (0, index))
    return best[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _archiver_imports(path: Path) -> set[str]:
    # Every import in the file, lazy ones inside functions included.
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "archiver")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update([node.module] if node.module.split(".")[0] == "archiver" else [])
    return found


def _upward_imports() -> list[str]:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module.startswith("archiver.simulator") or module.startswith("archiver.migrations"):
            continue
        here = _layer_of(module)
        assert here >= 0, f"{module} is in no layer: add it to LAYERS"
        for target in sorted(_archiver_imports(path)):
            if target.startswith("archiver.simulator"):
                continue  # the simulator stands apart; only demo and cli start it
            if _layer_of(target) > here:
                upward.append(f"{module} -> {target}")
    return upward


def test_every_import_points_down_the_layers() -> None:
    assert _upward_imports() == []


def test_the_layer_check_sees_an_upward_import(monkeypatch: pytest.MonkeyPatch) -> None:
    # The check itself must be able to fail: pretend the store imported the cycle.
    real = _archiver_imports

    def with_one_more(path: Path) -> set[str]:
        extra = {"archiver.cycle.sync"} if _module_name(path) == "archiver.store.state" else set()
        return real(path) | extra

    monkeypatch.setattr(sys.modules[__name__], "_archiver_imports", with_one_more)
    assert _upward_imports() == ["archiver.store.state -> archiver.cycle.sync"]
