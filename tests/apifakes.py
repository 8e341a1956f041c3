"""Fakes for the API layer's tests: a client on an in-process fake vendor, a service that
holds its lock, and the statuses of the runs it recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient
from archiver.api.retry import RetryPolicy
from archiver.config import get_settings
from archiver.service.runner import Service
from archiver.store.tables import sync_runs
from tests.simhelpers import TOKEN


def fake_client(
    answer: Callable[[httpx.Request], httpx.Response], **options: object
) -> tuple[AnalyticsClient, list[httpx.Request]]:
    """A client whose vendor is `answer`, and the list of the requests it was asked."""
    asked: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return answer(request)

    arguments: dict[str, object] = {
        "base_url": "https://api.millicast.com",
        "token": TOKEN,
        "transport": httpx.MockTransport(record),
        "retry": RetryPolicy(max_attempts=3),
        "sleep": lambda _: None,
    }
    arguments.update(options)  # a test's own token, sleep or clock
    client = AnalyticsClient(**arguments)  # type: ignore[arg-type]
    return client, asked


def locked_service(engine: Engine, url: str, now: datetime, token: str = TOKEN) -> Service:
    """`archiver run`'s service on `engine` against `url`, holding the instance lock."""
    settings = get_settings(
        database_url=engine.url.render_as_string(hide_password=False),
        api_base_url=url,
        api_token=token,
        now=now,
        discovery=False,
        publish_tokens=False,
        max_attempts=2,
        backoff_base_seconds=0.001,
    )
    run = Service(settings, engine)
    assert run.lock.try_acquire()
    return run


def run_statuses(engine: Engine) -> list[str]:
    """The status of every run recorded, oldest first."""
    with engine.connect() as conn:
        query = sa.select(sync_runs.c.status).order_by(sync_runs.c.id)
        return list(conn.execute(query).scalars())
