"""Polling a source's STAC API page by page; each page's new or changed items become scenes and
ingest jobs in one transaction, which also advances the watermark."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pystac_client
import requests
from pystac_client import ConformanceClasses
from pystac_client.exceptions import APIError
from sqlalchemy import Connection, Engine, func, select, update

from geomelt.db import unit_of_work
from geomelt.db.models import Source
from geomelt.db.parsing import loose_instant
from geomelt.db.queries.ingest import SceneRecord, upsert_scene

from .errors import SourceUnavailable

__all__ = ["PollResult", "item_datetime", "item_version", "poll_source"]

logger = logging.getLogger(__name__)

# Called inside the page's transaction with the ids of new or changed scenes.
Enqueue = Callable[[Connection, Sequence[int]], None]


@dataclass
class PollResult:
    pages: int = 0
    items: int = 0
    new_or_changed: int = 0
    repeated: int = 0  # items the API returned more than once in this poll
    invalid: int = 0  # items without an id
    scene_ids: list[int] = field(default_factory=list)


def item_datetime(item: dict[str, Any]) -> dt.datetime | None:
    properties = item.get("properties") or {}
    instant = loose_instant(properties.get("datetime"))
    return instant or loose_instant(properties.get("start_datetime"))


def item_version(item: dict[str, Any]) -> str:
    """`updated` when the item has one, else a hash of the item: what decides "changed"."""
    updated = (item.get("properties") or {}).get("updated")
    if isinstance(updated, str) and updated:
        return f"updated:{updated}"
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _watermark_time(item: dict[str, Any]) -> dt.datetime | None:
    properties = item.get("properties") or {}
    return loose_instant(properties.get("updated")) or item_datetime(item)


def _bbox(item: dict[str, Any]) -> tuple[float, float, float, float] | None:
    bbox = item.get("bbox")
    if isinstance(bbox, list) and len(bbox) in (4, 6):
        try:
            values = [float(v) for v in bbox]
        except (TypeError, ValueError):
            return None
        half = len(values) // 2
        return values[0], values[1], values[half], values[half + 1]
    return None


def _search_parameters(client: pystac_client.Client, source: Any, page_size: int) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "collections": [source.collection],
        "limit": page_size,
        **(source.search or {}),
    }
    # The watermark can only filter when the API filters and sorts by `updated`: per-page
    # watermark advances are then safe because pages come in ascending order.
    if (
        source.watermark is not None
        and client.conforms_to(ConformanceClasses.FILTER)
        and client.conforms_to(ConformanceClasses.SORT)
    ):
        newer = {
            "op": ">=",
            "args": [{"property": "updated"}, {"timestamp": source.watermark.isoformat()}],
        }
        user = parameters.get("filter")
        parameters["filter"] = {"op": "and", "args": [user, newer]} if user else newer
        parameters["filter_lang"] = "cql2-json"
        parameters["sortby"] = "+properties.updated"
    return parameters


def poll_source(
    engine: Engine,
    source_id: int,
    *,
    enqueue: Enqueue | None,
    page_size: int = 100,
    timeout_s: float = 30.0,
    max_items: int | None = None,
) -> PollResult:
    """Fetch the source's items page by page (at most `max_items`) and store them as scenes.

    A page that fails (HTTP error, timeout, bad JSON) is recorded on the source and raised as
    SourceUnavailable; earlier pages stay stored, and the next poll repeats them idempotently.
    """
    with unit_of_work(engine) as connection:
        source = connection.execute(select(Source.__table__).where(Source.id == source_id)).one()
    result = PollResult()
    seen: set[str] = set()
    where = f"source {source.name!r} ({source.stac_api_url}, collection {source.collection!r})"
    try:
        client = pystac_client.Client.open(source.stac_api_url, timeout=timeout_s)
        limit = page_size if max_items is None else max(1, min(page_size, max_items))
        parameters = _search_parameters(client, source, limit)
        search = client.search(**parameters, max_items=max_items)
        for page in search.pages_as_dicts():
            result.pages += 1
            _store_page(engine, source, page.get("features") or [], seen, result, enqueue)
    except (APIError, requests.RequestException, ValueError) as exc:
        message = f"{where}: page {result.pages + 1} of the search failed: {exc}"
        _record(engine, source_id, error=message[:2000])
        raise SourceUnavailable(
            message + "; check the URL and that the API is up (the poll is retried)"
        ) from exc
    _record(engine, source_id, error=None)
    logger.info(
        "%s: %d items in %d pages, %d new or changed",
        where,
        result.items,
        result.pages,
        result.new_or_changed,
    )
    return result


def _store_page(
    engine: Engine,
    source: Any,
    features: list[dict[str, Any]],
    seen: set[str],
    result: PollResult,
    enqueue: Enqueue | None,
) -> None:
    changed: list[int] = []
    newest: dt.datetime | None = None
    with unit_of_work(engine) as connection:
        for item in features:
            item_id = item.get("id")
            if not isinstance(item_id, str) or not item_id:
                result.invalid += 1
                logger.warning("source %r: an item without an id was skipped", source.name)
                continue
            result.items += 1
            if item_id in seen:
                result.repeated += 1
                continue
            seen.add(item_id)
            scene_id, is_changed = upsert_scene(
                connection,
                SceneRecord(
                    source_id=source.id,
                    collection=str(item.get("collection") or source.collection),
                    item_id=item_id,
                    item=item,
                    datetime=item_datetime(item),
                    item_version=item_version(item),
                    bbox_lonlat=_bbox(item),
                ),
            )
            stamp = _watermark_time(item)
            if stamp is not None and (newest is None or stamp > newest):
                newest = stamp
            if is_changed:
                changed.append(scene_id)
        if changed and enqueue is not None:
            enqueue(connection, changed)
        if newest is not None:
            connection.execute(
                update(Source)
                .where(Source.id == source.id)
                .values(watermark=func.greatest(func.coalesce(Source.watermark, newest), newest))
            )
    result.new_or_changed += len(changed)
    result.scene_ids.extend(changed)


def _record(engine: Engine, source_id: int, *, error: str | None) -> None:
    with unit_of_work(engine) as connection:
        connection.execute(
            update(Source)
            .where(Source.id == source_id)
            .values(last_polled_at=func.now(), last_error=error)
        )
