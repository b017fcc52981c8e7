"""Turning the packages' errors into one stderr line and an exit code."""

from __future__ import annotations

import click

EXIT_NOT_BUILT = 3


class NotBuiltError(click.ClickException):
    """A command of the CLI whose feature is not built yet."""

    exit_code = EXIT_NOT_BUILT

    def __init__(self, command: str, issue: str) -> None:
        super().__init__(
            f"'geomelt {command}' is not built yet ({issue}); nothing was done."
        )
