"""Turning the packages' errors into one stderr line and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from geomelt.db import Conflict, DbError, InvalidSource, NotFound
from geomelt.workers.errors import IngestError

EXIT_INPUT = 2  # as click's own usage errors: the command's input is wrong
EXIT_DATABASE = 4
EXIT_INGEST = 5
EXIT_MODEL = 6


class InputProblem(click.ClickException):
    exit_code = EXIT_INPUT


class DatabaseProblem(click.ClickException):
    exit_code = EXIT_DATABASE


class IngestProblem(click.ClickException):
    exit_code = EXIT_INGEST


class ModelProblem(click.ClickException):
    exit_code = EXIT_MODEL


def _model_error() -> type[Exception] | None:
    # Importing geomelt.model loads torch (seconds); a ModelError can only have been raised
    # once its module is loaded, so look it up instead of importing it for every command.
    module = sys.modules.get("geomelt.model.errors")
    error = getattr(module, "ModelError", None)
    return error if isinstance(error, type) and issubclass(error, Exception) else None


@contextmanager
def cli_errors() -> Iterator[None]:
    """Known errors become one line on stderr and a non-zero exit, not a traceback."""
    try:
        yield
    except (InvalidSource, NotFound, Conflict) as exc:
        raise InputProblem(str(exc)) from exc
    except DbError as exc:
        raise DatabaseProblem(str(exc)) from exc
    except IngestError as exc:
        raise IngestProblem(str(exc)) from exc
    except Exception as exc:
        model_error = _model_error()
        if model_error is not None and isinstance(exc, model_error):
            raise ModelProblem(str(exc)) from exc
        raise
