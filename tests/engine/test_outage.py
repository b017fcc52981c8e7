"""A database outage under a running API: 503 with Retry-After, then service by itself again."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
from litestar.testing import TestClient

from geomelt.db import RETRY_AFTER_S, EmbeddedPostgres, upgrade
from geomelt.engine import AppDeps, create_app

from .conftest import make_config
from .seeding import seed_url


def _kill_postmaster(data_dir: Path) -> None:
    pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"postgres {pid} still running"
        time.sleep(0.1)


def test_api_answers_503_while_the_database_is_down_and_recovers(
    server_dir: Path, tiny_model: Any
) -> None:
    with EmbeddedPostgres(server_dir) as server:
        upgrade(server.url)
        seed_url(server.url, tiny_model)
        app = create_app(AppDeps(config=make_config(server.url), load_model=lambda: tiny_model))
        with TestClient(app) as client:
            assert client.get("/search", params={"limit": 2}).status_code == 200

            _kill_postmaster(server_dir)
            for path in ("/search", "/collections", "/collections/sentinel-2-l2a/items"):
                down = client.get(path)
                assert down.status_code == 503, down.text
                assert down.headers["retry-after"] == str(RETRY_AFTER_S)
                assert down.json()["code"] == "ServiceUnavailable"
                assert "database is unavailable" in down.json()["description"]

            # The next geomelt command starts the server again, on the port the API still uses.
            with EmbeddedPostgres(server_dir) as restarted:
                assert restarted.port == server.port
                back = client.get("/search", params={"limit": 2})
                assert back.status_code == 200, back.text
                assert len(back.json()["features"]) == 2
                assert client.get("/collections").status_code == 200
