"""The core stands alone: the planner without HTTP or settings, the simulator without the client,
the API layer a leaf (no settings, no planner), the settings without the planner."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import archiver

PACKAGE = Path(archiver.__file__).resolve().parent
ROOT = PACKAGE.parent


def _imported(module: str) -> set[str]:
    # A fresh interpreter: in this one, other tests have imported everything already.
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def _inside(loaded: set[str], *packages: str) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(f"{p}.") for p in packages))


def _imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """Every import statement of a source file, lazy ones inside functions too, as (module,
    names): `from archiver.api import series` is ("archiver.api", ["series"])."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _modules_named(path: Path) -> set[str]:
    """The modules a source file imports (`from p import m` counts as p.m when m is one)."""
    named: set[str] = set()
    for module, names in _imports_of(path):
        named.add(module)
        named.update(f"{module}.{name}" for name in names)
    return named


def test_the_planner_imports_neither_the_http_layer_nor_pydantic_nor_the_settings() -> None:
    loaded = _imported("archiver.rules.plan")
    assert "archiver.vocabulary" in loaded
    libraries = ("httpx", "pydantic", "pydantic_core", "pydantic_settings")
    assert _inside(loaded, *libraries, "archiver.api", "archiver.config") == []


def test_the_simulator_keeps_its_own_copy_of_the_vendor_rules() -> None:
    loaded = _imported("archiver.simulator")
    assert "archiver.vocabulary" not in loaded
    assert _inside(loaded, "archiver.api") == []


def test_the_api_layer_never_imports_the_settings_nor_the_planner() -> None:
    # Read from the source, so that an import inside a function counts as much as one on top.
    sources = sorted((PACKAGE / "api").rglob("*.py"))
    assert sources
    upward = {
        str(path.relative_to(ROOT)): _inside(
            _modules_named(path), "archiver.config", "archiver.rules.plan"
        )
        for path in sources
    }
    assert {path: names for path, names in upward.items() if names} == {}
    # And what the client really loads: no settings library, no planner.
    loaded = _imported("archiver.api.client")
    assert "httpx" in loaded
    assert _inside(loaded, "archiver.config", "archiver.rules.plan", "pydantic_settings") == []


def test_the_settings_do_not_import_the_planner() -> None:
    assert _inside(_modules_named(PACKAGE / "config.py"), "archiver.rules.plan") == []
    loaded = _imported("archiver.config")
    assert "pydantic_settings" in loaded
    assert _inside(loaded, "archiver.rules.plan", "httpx") == []


def test_declarations_are_imported_from_the_vocabulary_not_through_the_api() -> None:
    # `archiver.api.endpoints` holds the answers' schemas; a name of the vocabulary imported
    # from it would be the re-export shim back.
    tree = ast.parse((PACKAGE / "api" / "endpoints.py").read_text(encoding="utf-8"))
    own = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    own |= {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert "schema_of" in own
    borrowed = {
        f"{path.relative_to(ROOT)}: {name}"
        for folder in ("archiver", "tests", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for module, names in _imports_of(path)
        if module == "archiver.api.endpoints"
        for name in names
        if name not in own
    }
    assert sorted(borrowed) == []


def test_status_loads_no_http_layer() -> None:
    loaded = _imported("archiver.reading.status")
    assert "sqlalchemy" in loaded
    assert _inside(loaded, "httpx", "httpcore", "archiver.api.client") == []


# The layers of the package, lowest first. A module may import its own layer or a lower one,
# never a higher one: so one cycle can be followed from `cli` down through `cycle` into `api`
# and `store` without climbing back (docs/architecture.md draws the same picture).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("archiver", "archiver.errors", "archiver.text"),
    ("archiver.timeutil",),
    ("archiver.columns", "archiver.datasets"),
    ("archiver.vocabulary",),
    ("archiver.rules",),
    ("archiver.api",),
    ("archiver.setting_names", "archiver.setting_values", "archiver.config"),
    ("archiver.store",),
    ("archiver.cycle",),
    ("archiver.reading",),
    ("archiver.observability", "archiver.service", "archiver.demo"),
    ("archiver.cli", "archiver.__main__"),
)


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


def test_every_module_has_one_purpose_in_under_300_lines() -> None:
    # CONTRIBUTING.md: one purpose, said by its docstring, in at most 300 lines.
    modules = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "bench").glob("*.py")]
    assert len(modules) > 50
    too_long = [str(p) for p in modules if len(p.read_text().splitlines()) > 300]
    assert too_long == []
    undocumented = [
        str(p)
        for p in modules
        if p.read_text().strip() and ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert undocumented == []
