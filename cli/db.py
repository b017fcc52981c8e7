"""`geomelt db ...`: the database server and its schema."""

from __future__ import annotations

import click


@click.group("db")
def db_group() -> None:
    """Start the embedded database, migrate the schema."""
