"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from geomelt.db import EmbeddedPostgres, upgrade

TEMPLATE = "geomelt_template"


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(tmp_path_factory.mktemp("embedded")) as server:
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
