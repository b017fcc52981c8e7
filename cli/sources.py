"""`geomelt source ...`: register, list, inspect and remove STAC sources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from geomelt.db import create_db_engine, unit_of_work
from geomelt.workers import SourceSpec, add_source, list_sources, remove_source, source_status
from geomelt.workers.spec import describe_search

from .database import open_database
from .errors import cli_errors
from .settings import Settings

__all__ = ["search_options", "source_group", "spec_from_options"]


def search_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The STAC search and chipping options shared by `source add` and `ingest`."""
    options = [
        click.option("--stac-api", "stac_api", required=True, help="STAC API root URL."),
        click.option("--collection", required=True, help="Collection id to ingest."),
        click.option("--bbox", help="minx,miny,maxx,maxy in lon/lat."),
        click.option("--intersects", help="GeoJSON geometry (JSON text)."),
        click.option("--datetime", "datetime_", help="Instant or interval, e.g. 2023-01-01/.."),
        click.option("--filter", "filter_text", help="CQL2 filter, text or JSON."),
        click.option("--query", help="STAC query extension object (JSON text)."),
        click.option(
            "--assets",
            help="red,green,blue | visual | pan (default: the first of those the item has).",
        ),
        click.option(
            "--resolution", type=float, help="Metres per pixel (default: the item's native)."
        ),
        click.option("--chip-size", type=int, default=224, show_default=True, help="Pixels."),
        click.option("--overlap", type=int, default=0, show_default=True, help="Pixels."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def spec_from_options(name: str, every: str | None, options: dict[str, Any]) -> SourceSpec:
    return SourceSpec.from_options(
        name=name,
        stac_api_url=options["stac_api"],
        collection=options["collection"],
        bbox=options["bbox"],
        intersects=options["intersects"],
        datetime=options["datetime_"],
        filter_text=options["filter_text"],
        query=options["query"],
        assets=options["assets"],
        resolution_m=options["resolution"],
        chip_size_px=options["chip_size"],
        overlap_px=options["overlap"],
        every=every,
    )


@click.group("source")
def source_group() -> None:
    """Register and inspect STAC sources."""


@source_group.command("add")
@click.argument("name")
@search_options
@click.option("--every", help="Poll period, e.g. 15m, 1h, 1d (default: never, poll by hand).")
def add_command(name: str, every: str | None, **options: Any) -> None:
    """Register the STAC source NAME; workers poll it every --every."""
    with cli_errors():
        spec = spec_from_options(name, every, options)
        settings = Settings.from_env()
        with open_database(settings) as url:
            engine = create_db_engine(url)
            with unit_of_work(engine) as connection:
                source_id = add_source(
                    connection, spec, allow_private_hosts=settings.allow_private_sources
                )
            engine.dispose()
    click.echo(f"source {name} added (id {source_id})")


@source_group.command("list")
def list_command() -> None:
    """List the registered sources."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        engine = create_db_engine(url)
        with unit_of_work(engine) as connection:
            sources = list_sources(connection)
        engine.dispose()
    for source in sources:
        every = f"every {source['poll_every_s']}s" if source["poll_every_s"] else "manual"
        click.echo(
            f"{source['name']}\t{source['stac_api_url']}\t{source['collection']}\t{every}\t"
            f"chip {source['chip_size_px']}px overlap {source['overlap_px']}px\t"
            + describe_search(source["search"] or {}, source["assets"] or ())
        )


@source_group.command("status")
@click.argument("name")
def status_command(name: str) -> None:
    """Scenes and chips by state, last poll and errors of source NAME."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        engine = create_db_engine(url)
        with unit_of_work(engine) as connection:
            status = source_status(connection, name)
        engine.dispose()
    click.echo(f"source {status.name}")
    click.echo(f"  last poll: {status.last_polled_at or 'never'}  watermark: {status.watermark}")
    if status.last_error:
        click.echo(f"  last poll error: {status.last_error}")
    states = ", ".join(f"{s} {n}" for s, n in sorted(status.scenes_by_state.items()))
    click.echo(f"  scenes: {states or 'none'}")
    chips = ", ".join(f"{m} {n}" for m, n in sorted(status.chips_by_model.items()))
    click.echo(f"  chips: {chips or 'none'} (skipped as mostly empty: {status.chips_skipped})")
    for item_id, attempts, reason in status.failures:
        click.echo(f"  failed {item_id} after {attempts} attempt(s): {reason}")


@source_group.command("remove")
@click.argument("name")
def remove_command(name: str) -> None:
    """Remove source NAME with its scenes and chips."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        engine = create_db_engine(url)
        with unit_of_work(engine) as connection:
            scenes = remove_source(connection, name)
        engine.dispose()
    click.echo(f"source {name} removed with {scenes} scenes and their chips")
