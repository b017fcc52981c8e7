"""Errors of the database layer. Each message names the input and what to do about it."""

from __future__ import annotations

from sqlalchemy.engine import make_url


class DbError(Exception):
    """A database problem."""


class DataDirError(DbError):
    """The embedded database's data directory cannot be used."""


class EmbeddedServerError(DbError):
    """The embedded PostgreSQL server could not be started or reached."""


class DatabaseUnavailable(DbError):
    """The configured database cannot be reached."""


class ExtensionMissing(DbError):
    """The database lacks a required extension (pgvector)."""


class MigrationRequired(DbError):
    """The database schema is older than this code; run `geomelt db upgrade`."""


class NotFound(DbError):
    """A row that was asked for by key does not exist."""


class Conflict(DbError):
    """A write conflicts with an existing row."""


class InvalidVector(DbError, ValueError):
    """A vector handed to the database is not a finite, non-zero 1-D vector.

    Not a conflict with stored data: a bug in whatever computed it (the model, a caller).
    """


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL must still be reportable
        return "<unparsable database URL>"
