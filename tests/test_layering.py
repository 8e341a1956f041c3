"""The core stands alone: the planner without HTTP or settings, the simulator without the client,
the API layer a leaf (no settings, no planner), the settings without the planner."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
    loaded = _imported("archiver.plan")
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
            _modules_named(path), "archiver.config", "archiver.plan"
        )
        for path in sources
    }
    assert {path: names for path, names in upward.items() if names} == {}
    # And what the client really loads: no settings library, no planner.
    loaded = _imported("archiver.api.client")
    assert "httpx" in loaded
    assert _inside(loaded, "archiver.config", "archiver.plan", "pydantic_settings") == []


def test_the_settings_do_not_import_the_planner() -> None:
    assert _inside(_modules_named(PACKAGE / "config.py"), "archiver.plan") == []
    loaded = _imported("archiver.config")
    assert "pydantic_settings" in loaded
    assert _inside(loaded, "archiver.plan", "httpx") == []


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
    loaded = _imported("archiver.status")
    assert "sqlalchemy" in loaded
    assert _inside(loaded, "httpx", "httpcore", "archiver.api.client") == []
