"""Turning the packages' errors into one stderr line and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from geomelt.db import DbError
from geomelt.workers.errors import IngestError

EXIT_DATABASE = 4
EXIT_INGEST = 5


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
