"""The simulator is the vendor: it imports none of the archiver's code, so none of its rules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import archiver.simulator

PACKAGE = Path(archiver.simulator.__file__).parent
# Importing `archiver.simulator` runs `archiver/__init__.py`, which only holds the version.
ALLOWED = {"archiver"}


def _archiver_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n == "archiver" or n.startswith("archiver.")}


def test_no_simulator_module_names_archiver_code_outside_the_simulator() -> None:
    found = {
        f"{path.name}: {name}"
        for path in sorted(PACKAGE.glob("*.py"))
        for name in _archiver_imports(path)
        if name not in ALLOWED and not name.startswith("archiver.simulator")
    }
    assert not found, f"the simulator imports code under test: {sorted(found)}"


def test_importing_the_whole_simulator_loads_no_other_archiver_module() -> None:
    # A fresh interpreter: this test process has long imported the rest of the archiver.
    modules = [f"archiver.simulator.{p.stem}" for p in sorted(PACKAGE.glob("*.py"))]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name.removesuffix('.__init__'))\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] == 'archiver')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(done.stdout.split())
    assert "archiver.simulator.server" in loaded
    others = {m for m in loaded - ALLOWED if not m.startswith("archiver.simulator")}
    assert not others, f"importing the simulator loads code under test: {sorted(others)}"
