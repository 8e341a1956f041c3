"""Helpers for tests that talk to the simulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx

from archiver.simulator import SimConfig, Simulator
from archiver.simulator.server import Faults

TOKEN = "sim-token"


@contextmanager
def running_simulator(
    config: SimConfig, *, start: datetime, faults: Faults | None = None
) -> Iterator[tuple[Simulator, httpx.Client]]:
    """A simulator on a free loopback port and an authenticated client for it."""
    with (
        Simulator(config, token=TOKEN, start=start, faults=faults) as sim,
        httpx.Client(
            base_url=sim.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as http,
    ):
        yield sim, http


def get_data(http: httpx.Client, path: str, params: list[tuple[str, str]]) -> Any:
    """GET an analytics path and return `data`, asserting success."""
    response = http.get(path, params=tuple(params))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]
