"""Engine fixtures: one tiny model per session, a seeded database and app per test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from litestar.testing import TestClient

from geomelt.db.embedded import free_port
from geomelt.engine import AppDeps, EngineConfig, create_app
from geomelt.model import load

from .seeding import Seeded, seed_url


@pytest.fixture(scope="session")
def tiny_model() -> Any:
    return load("tiny-random")


def make_config(database_url: str, **overrides: Any) -> EngineConfig:
    # Test sources live on loopback servers; tests of the address policy turn it back off.
    settings: dict[str, Any] = {"allow_private_sources": True, **overrides}
    return EngineConfig(database_url=database_url, secret=b"test-secret", **settings)


@pytest.fixture
def seeded(database_url: str, tiny_model: Any) -> Seeded:
    return seed_url(database_url, tiny_model)


@pytest.fixture
def client(database_url: str, seeded: Seeded, tiny_model: Any) -> Iterator[TestClient[Any]]:
    app = create_app(AppDeps(config=make_config(database_url), load_model=lambda: tiny_model))
    with TestClient(app) as test_client:
        yield test_client


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test thread is not the main thread
        pass


@pytest.fixture
def live_server(database_url: str, seeded: Seeded, tiny_model: Any) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 serving the seeded database."""
    app = create_app(AppDeps(config=make_config(database_url), load_model=lambda: tiny_model))
    with serve_app(app, lifespan="on") as base:
        yield base


@contextmanager
def serve_app(app: Any, **uvicorn_options: Any) -> Iterator[str]:
    """`app` under real uvicorn on a free loopback port, in a thread; yields the base URL."""
    port = free_port()
    server = _ThreadedServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
