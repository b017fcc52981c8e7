"""Opening the configured database: an external URL, or the embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from geomelt.db import EmbeddedPostgres, check_database

from .settings import Settings


@contextmanager
def open_database(settings: Settings) -> Iterator[str]:
    """Yield a checked SQLAlchemy URL; the embedded server runs (or is attached) meanwhile."""
    if settings.database_url is not None:
        check_database(settings.database_url)
        yield settings.database_url
        return
    with EmbeddedPostgres(settings.embedded_dir) as server:
        check_database(server.url)
        yield server.url
