"""`geomelt db ...`: the database server and its schema."""

from __future__ import annotations

import contextlib
import signal
import threading

import click

from geomelt.db import current_revision, downgrade, head_revision, upgrade
from geomelt.db.errors import redact

from .database import open_database
from .errors import cli_errors
from .settings import Settings


@click.group("db")
def db_group() -> None:
    """Start the embedded database, migrate the schema."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Migrate the schema up to REVISION (default: the newest)."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        upgrade(url, revision)
        click.echo(f"schema at {current_revision(url)} ({redact(url)})")


@db_group.command("downgrade")
@click.argument("revision")
def downgrade_command(revision: str) -> None:
    """Migrate the schema down to REVISION (`-1` for one step, `base` to drop everything)."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        downgrade(url, revision)
        click.echo(f"schema at {current_revision(url) or 'base'} ({redact(url)})")


@db_group.command("current")
def current_command() -> None:
    """Print the schema revision of the database and the newest one this code knows."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        click.echo(f"database: {current_revision(url) or 'base'}; code: {head_revision()}")


@db_group.command("start")
def start_command() -> None:
    """Run the embedded database in the foreground until Ctrl-C; other commands attach to it."""
    settings = Settings.from_env()
    if settings.database_url is not None:
        raise click.UsageError("GEOMELT_DATABASE_URL is set: there is no embedded server to run")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with cli_errors(), open_database(settings) as url:
        click.echo(f"embedded PostgreSQL ready at {url}; Ctrl-C stops it", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
