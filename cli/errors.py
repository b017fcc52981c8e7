"""Turning the packages' errors into one stderr line and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from geomelt.db import DbError
from geomelt.workers.errors import IngestError

EXIT_NOT_BUILT = 3
EXIT_DATABASE = 4
EXIT_INGEST = 5


class NotBuiltError(click.ClickException):
    """A command of the CLI whose feature is not built yet."""

    exit_code = EXIT_NOT_BUILT

    def __init__(self, command: str, issue: str) -> None:
        super().__init__(f"'geomelt {command}' is not built yet ({issue}); nothing was done.")


class DatabaseProblem(click.ClickException):
    exit_code = EXIT_DATABASE


class IngestProblem(click.ClickException):
    exit_code = EXIT_INGEST


@contextmanager
def cli_errors() -> Iterator[None]:
    """Known errors become one line on stderr and a non-zero exit, not a traceback."""
    try:
        yield
    except DbError as exc:
        raise DatabaseProblem(str(exc)) from exc
    except IngestError as exc:
        raise IngestProblem(str(exc)) from exc
