"""`geomelt search`: a natural-language search against a running `geomelt serve`."""

from __future__ import annotations

import json

import click

from geomelt.db import parsing
from geomelt.engine import semantic_search

__all__ = ["search_command"]


@click.command("search")
@click.argument("text", required=False)
@click.option("--url", default="http://127.0.0.1:8000/", show_default=True, help="API root.")
@click.option("--similar-to", multiple=True, help="Item id to search by example (repeatable).")
@click.option("--collection", "collections", multiple=True, help="Collection id (repeatable).")
@click.option("--bbox", help="west,south,east,north")
@click.option("--datetime", "datetime_", help="RFC 3339 instant or interval.")
@click.option("--filter", "filter_", help="CQL2 text filter.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print the items as JSON lines.")
def search_command(
    text: str | None,
    url: str,
    similar_to: tuple[str, ...],
    collections: tuple[str, ...],
    bbox: str | None,
    datetime_: str | None,
    filter_: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Search chips by TEXT (and/or --similar-to) within the usual STAC filters."""
    if not text and not similar_to:
        raise click.UsageError("give TEXT or --similar-to")
    # Checked here as the API checks them, so a typo is named before any request is sent.
    try:
        box = parsing.parse_bbox(parsing.bbox_numbers(bbox, "--bbox"), "--bbox") if bbox else None
        if datetime_:
            parsing.parse_interval(datetime_, "--datetime")
    except parsing.InvalidValue as exc:
        raise click.UsageError(str(exc)) from exc
    search = semantic_search(
        url,
        q=text,
        similar_to=list(similar_to) or None,
        collections=list(collections) or None,
        bbox=list(box) if box else None,
        datetime=datetime_,
        filter=filter_,
        limit=limit,
        max_items=limit,
    )
    try:
        items = list(search.items_as_dicts())
    except Exception as exc:  # pystac-client raises APIError and friends; re-raised
        raise click.ClickException(f"search failed: {exc}") from exc
    for item in items:
        properties = item["properties"]
        if as_json:
            click.echo(json.dumps(item))
        else:
            score = properties.get("search:score")
            shown = "" if score is None else f"{score:.6f}"
            click.echo(f"{shown:<10} {item['id']}  {properties.get('caption')}")
