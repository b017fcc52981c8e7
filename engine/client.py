"""`semantic_search`: q / similar_to / negative through pystac-client 0.9.1.

pystac-client has no `q` argument, so the parameters travel through `request_modifier`, which
runs for every page (../shared/specs/STAC_API.md section 3.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["semantic_search"]


def semantic_search(
    url: str,
    *,
    q: str | None = None,
    similar_to: Sequence[str] | None = None,
    negative: Sequence[str] | None = None,
    method: str = "POST",
    collections: Sequence[str] | None = None,
    bbox: Sequence[float] | None = None,
    datetime: str | None = None,
    filter: dict[str, Any] | str | None = None,
    limit: int | None = None,
    max_items: int | None = None,
) -> Any:
    """A pystac-client ItemSearch ranked by `q` and/or `similar_to` over the usual filters."""
    from pystac_client import Client

    extra: dict[str, Any] = {}
    if q is not None:
        extra["q"] = q
    if similar_to:
        extra["similar_to"] = list(similar_to)
    if negative:
        extra["negative"] = list(negative)

    def add_ranking(request: Any) -> None:
        # pystac-client hands over a requests.Request (json= for POST, params= for GET).
        if request.method == "POST":
            request.json = {**(request.json or {}), **extra}
        else:
            listed = {k: ",".join(v) if isinstance(v, list) else v for k, v in extra.items()}
            request.params = {**(request.params or {}), **listed}

    client = Client.open(url, request_modifier=add_ranking)
    # pystac-client's stubs take lists (or a comma-separated str), not any Sequence.
    if collections is not None and not isinstance(collections, str):
        collections = list(collections)
    return client.search(
        method=method,
        collections=collections,
        bbox=None if bbox is None else list(bbox),
        datetime=datetime,
        filter=filter,
        limit=limit,
        max_items=max_items,
    )
