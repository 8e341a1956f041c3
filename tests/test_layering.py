"""The core stands alone: the planner without HTTP or settings, the simulator without the client."""

from __future__ import annotations

import subprocess
import sys


def _imported(module: str) -> set[str]:
    # A fresh interpreter: in this one, other tests have imported everything already.
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_the_planner_imports_neither_the_http_layer_nor_pydantic_nor_the_settings() -> None:
    loaded = _imported("archiver.plan")
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
