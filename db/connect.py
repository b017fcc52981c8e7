"""Checks that a configured database can serve GeoMELT Search."""

from __future__ import annotations

import psycopg
from sqlalchemy.engine import make_url

from .errors import DatabaseUnavailable, ExtensionMissing, redact

__all__ = ["MIN_PGVECTOR", "MIN_SERVER_VERSION", "check_database"]

MIN_SERVER_VERSION = 150000
# 0.8 brought iterative index scans; 0.8.4 fixed HNSW vacuum corruption.
MIN_PGVECTOR = (0, 8, 4)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def check_database(url: str, *, timeout_s: int = 5) -> None:
    """Raise a clear error unless `url` reaches PostgreSQL >= 15 with pgvector >= 0.8.4."""
    try:
        connection = psycopg.connect(_libpq(url), connect_timeout=timeout_s, autocommit=True)
    except (psycopg.Error, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot connect to the database {redact(url)}: {reason}. Check that the server "
            "runs and the URL (GEOMELT_DATABASE_URL) is right, or unset GEOMELT_DATABASE_URL "
            "to use the embedded database"
        ) from exc
    with connection:
        version = connection.info.server_version
        if version < MIN_SERVER_VERSION:
            raise DatabaseUnavailable(
                f"the database {redact(url)} runs PostgreSQL {version // 10000}; "
                "GeoMELT Search needs PostgreSQL 15 or newer"
            )
        row = connection.execute(
            "SELECT default_version, installed_version FROM pg_available_extensions "
            "WHERE name = 'vector'"
        ).fetchone()
    if row is None:
        raise ExtensionMissing(
            f"the database {redact(url)} has no pgvector extension available; install "
            "pgvector >= 0.8.4 on that server (package postgresql-NN-pgvector or from source), "
            "or unset GEOMELT_DATABASE_URL to use the embedded database, which includes it"
        )
    available = str(row[1] or row[0])
    if _version_tuple(available) < MIN_PGVECTOR:
        raise ExtensionMissing(
            f"the database {redact(url)} has pgvector {available}; GeoMELT Search needs "
            f"{'.'.join(map(str, MIN_PGVECTOR))} or newer (ALTER EXTENSION vector UPDATE after "
            "upgrading the package)"
        )


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())
