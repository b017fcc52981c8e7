"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test; and
the `needs_shared` marker: a test that truly needs the project's data folder (../shared/data:
UCM training, evaluation, benchmarks) skips with a one-line reason on a clone that lacks it."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from geomelt.db import EmbeddedPostgres, upgrade

pytest_plugins = ["pytester"]  # tests/test_needs_shared.py runs the hook below in a sandbox

TEMPLATE = "geomelt_template"
# The project's machines keep data beside the repository; a clone elsewhere has none. Imagery
# tests use the shipped sample instead (geomelt/sample).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("needs_shared")
        if marker is None:
            continue
        needed = SHARED_DATA.joinpath(*marker.args)
        if not needed.exists():
            item.add_marker(pytest.mark.skip(reason=f"needs {needed} (absent from this clone)"))


@contextmanager
def _server_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: pytest re-tightens /tmp/pytest-of-<user> to 0700 and prunes
    # old session folders whenever another pytest session starts, which would lock the
    # unprivileged server user out of (or delete) a running cluster.
    folder = Path(tempfile.mkdtemp(prefix="geomelt-test-pg-"))
    try:
        yield folder
    finally:
        # The server stops a moment after its last user leaves; remove its files after that.
        deadline = time.monotonic() + 30
        while (folder / "pgdata" / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A data folder for an embedded server of the test's own, removed afterwards."""
    with _server_dir() as folder:
        yield folder


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedPostgres]:
    with _server_dir() as folder, EmbeddedPostgres(folder) as server:
        yield server


def _admin(server: EmbeddedPostgres) -> psycopg.Connection:
    return psycopg.connect(server.database_url("postgres").replace("+psycopg", ""), autocommit=True)


@pytest.fixture(scope="session")
def template_database(embedded_server: EmbeddedPostgres) -> str:
    """A database migrated to head once; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    with _admin(embedded_server) as admin:
        admin.execute(f"CREATE DATABASE {TEMPLATE}")
    upgrade(embedded_server.database_url(TEMPLATE))
    return TEMPLATE


def _scratch_database(server: EmbeddedPostgres, template: str | None) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with _admin(server) as admin:
        admin.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    try:
        yield server.database_url(name)
    finally:
        with _admin(server) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def database_url(embedded_server: EmbeddedPostgres, template_database: str) -> Iterator[str]:
    """A fresh database at the newest schema revision, dropped after the test."""
    yield from _scratch_database(embedded_server, template_database)


@pytest.fixture
def empty_database_url(embedded_server: EmbeddedPostgres) -> Iterator[str]:
    """A fresh database with no schema at all."""
    yield from _scratch_database(embedded_server, None)
