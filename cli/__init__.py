"""The `geomelt` command: the composition root that reads settings and wires the packages."""

from __future__ import annotations

import logging

import click

from .db import db_group
from .demo import demo_command
from .ingest import ingest_command
from .model import model_group
from .search import search_command
from .serve import serve_group
from .sources import source_group
from .worker import worker_command

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """GeoMELT Search: natural-language search over Earth imagery."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


main.add_command(db_group)
main.add_command(model_group)
main.add_command(demo_command)
main.add_command(serve_group)
main.add_command(worker_command)
main.add_command(source_group)
main.add_command(ingest_command)
main.add_command(search_command)
