"""A vendor that echoes the API secret back: the secret reaches no output, log or column."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from archiver.store.tables import sync_runs, sync_state

pytestmark = pytest.mark.e2e

SECRET = "echoed-secret-0123456789"


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with an error whose text quotes the Authorization header."""

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if "monitoring" in self.path:
            status, body = 500, {"status": "error", "message": f"boom for {token}", "code": 500}
        else:
            status, body = 400, {"status": "fail", "data": {"message": f"bad secret {token}!"}}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_vendor() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_echoed_secret_reaches_no_output_log_or_column(
    tmp_path: Path, echo_vendor: str, database_url: str, log_format: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env.update(
        ARCHIVER_API_TOKEN=SECRET,
        ARCHIVER_API_BASE_URL=echo_vendor,
        ARCHIVER_DATABASE_URL=database_url,
        ARCHIVER_LOG_LEVEL="DEBUG",
        ARCHIVER_LOG_FORMAT=log_format,
        ARCHIVER_MAX_ATTEMPTS="2",
        ARCHIVER_BACKOFF_BASE_SECONDS="0.01",
        ARCHIVER_STREAMS="main",
    )

    def archiver(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "archiver", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    sync = archiver("sync")
    assert sync.returncode == 1
    assert "rejected by the vendor" in sync.stdout + sync.stderr  # the vendor's words do arrive
    status = archiver("status", "--json")
    assert status.returncode == 0, status.stderr
    exported = archiver("export", "--table", "sync_state", "--format", "jsonl")
    for output in (sync.stdout, sync.stderr, status.stdout, status.stderr, exported.stdout):
        assert SECRET not in output
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        errors = [row[0] for row in conn.execute(sa.select(sync_state.c.last_error))]
        errors += [row[0] for row in conn.execute(sa.select(sync_runs.c.error))]
    engine.dispose()
    assert any(errors)
    for text in errors:
        assert SECRET not in (text or "")
