"""STAC documents: landing page, conformance, collections, items, the Fields extension (pure)."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from geomelt.db.queries.filters import QUERYABLES

__all__ = [
    "CONFORMANCE",
    "SEMANTIC_SEARCH",
    "apply_fields",
    "collection_document",
    "item_document",
    "landing_document",
    "queryables_document",
]

STAC_VERSION = "1.1.0"
GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.1"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SEMANTIC_SEARCH = "https://geomelt.dev/stac-api/semantic-search/v1.0.0"
SEMANTIC_SEARCH_SCHEMA = f"{SEMANTIC_SEARCH}/schema.json"

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#sort",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#fields",
    "https://api.stacspec.org/v1.0.0-rc.3/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    SEMANTIC_SEARCH,
    f"{SEMANTIC_SEARCH}#similar-to",
    # /changes and /cells/{cell_id}: change search over ground-grid cells (engine/change.py).
    f"{SEMANTIC_SEARCH}#change-search",
]

# Properties copied from the source item when present.
_SOURCE_PROPERTIES = ("eo:cloud_cover", "platform", "constellation", "gsd", "instruments")
_ALWAYS = ("id", "type", "stac_version", "collection")
_DEFAULT_FIELDS = (
    "id",
    "type",
    "geometry",
    "bbox",
    "links",
    "assets",
    "properties.datetime",
    "stac_version",
    "stac_extensions",
    "collection",
)


def rfc3339(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _link(rel: str, href: str, media_type: str, **extra: Any) -> dict[str, Any]:
    return {"rel": rel, "href": href, "type": media_type, **extra}


def landing_document(
    base: str, *, title: str, collections: Sequence[str], semantic: dict[str, Any]
) -> dict[str, Any]:
    links = [
        _link("self", f"{base}/", JSON),
        _link("root", f"{base}/", JSON),
        _link("conformance", f"{base}/conformance", JSON),
        _link("service-desc", f"{base}/api", OPENAPI),
        _link("service-doc", f"{base}/api.html", "text/html"),
        _link("data", f"{base}/collections", JSON),
        _link("search", f"{base}/search", GEOJSON, method="GET"),
        _link("search", f"{base}/search", GEOJSON, method="POST"),
        _link(QUERYABLES_REL, f"{base}/queryables", "application/schema+json"),
    ]
    links += [_link("child", f"{base}/collections/{quote(c, safe='')}", JSON) for c in collections]
    return {
        "type": "Catalog",
        "id": "geomelt",
        "title": title,
        "description": "Chips of Earth imagery, captioned and embedded by GeoMELT, as STAC Items; "
        "natural-language (q) and example-based (similar_to) search.",
        "stac_version": STAC_VERSION,
        "conformsTo": CONFORMANCE,
        "links": links,
        "semantic_search": semantic,
    }


def collection_document(base: str, summary: Any) -> dict[str, Any]:
    collection_id = summary.collection
    href = f"{base}/collections/{quote(collection_id, safe='')}"
    spatial = [summary.west, summary.south, summary.east, summary.north]
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": collection_id,
        "title": collection_id,
        "description": f"Chips of the source collection {collection_id} ({summary.chips} chips).",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [spatial if None not in spatial else [-180, -90, 180, 90]]},
            "temporal": {"interval": [[rfc3339(summary.start), rfc3339(summary.end)]]},
        },
        "links": [
            _link("self", href, JSON),
            _link("root", f"{base}/", JSON),
            _link("parent", f"{base}/", JSON),
            _link("items", f"{href}/items", GEOJSON),
            _link(QUERYABLES_REL, f"{href}/queryables", "application/schema+json"),
        ],
    }


def item_document(base: str, row: Any, *, rank: int | None = None) -> dict[str, Any]:
    collection = quote(row.collection, safe="")
    href = f"{base}/collections/{collection}/items/{quote(row.item_id, safe='')}"
    geometry = row.geometry
    source = row.source_item or {}
    source_properties = source.get("properties") or {}
    properties: dict[str, Any] = {
        "datetime": rfc3339(row.datetime),
        "created": rfc3339(row.created_at),
        "caption": row.caption,
        "geomelt:source_item": row.source_item_id,
        "geomelt:source_collection": row.collection,
        "geomelt:model": f"{row.model_name}@{row.model_version}",
        "grid:row": row.row,
        "grid:col": row.col,
        "valid_fraction": row.valid_fraction,
    }
    if row.mean_brightness is not None:
        properties["mean_brightness"] = row.mean_brightness
    for name in _SOURCE_PROPERTIES:
        if name in source_properties:
            properties[name] = source_properties[name]
    extensions = []
    if rank is not None:
        extensions.append(SEMANTIC_SEARCH_SCHEMA)
        properties["search:score"] = row.score
        properties["search:vector_score"] = row.vector_score
        if row.text_rank is not None:
            properties["search:text_rank"] = row.text_rank
        properties["search:rank"] = rank
    links = [
        _link("self", href, GEOJSON),
        _link("root", f"{base}/", JSON),
        _link("parent", f"{base}/collections/{collection}", JSON),
        _link("collection", f"{base}/collections/{collection}", JSON),
    ]
    source_self = next(
        (link.get("href") for link in source.get("links") or [] if link.get("rel") == "self"), None
    )
    if source_self:
        links.append(_link("derived_from", source_self, GEOJSON))
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": extensions,
        "id": row.item_id,
        "collection": row.collection,
        "geometry": geometry,
        "bbox": _bbox(geometry),
        "properties": properties,
        "links": links,
        "assets": _assets(href, row, source),
    }


def _assets(href: str, row: Any, source: dict[str, Any]) -> dict[str, Any]:
    assets: dict[str, Any] = {}
    if row.thumbnail_media_type:
        assets["thumbnail"] = {
            "href": f"{href}/thumbnail",
            "type": row.thumbnail_media_type,
            "roles": ["thumbnail"],
            "title": "Chip thumbnail",
        }
    source_assets = source.get("assets") or {}
    chosen = next(
        (
            asset
            for asset in source_assets.values()
            if isinstance(asset, dict) and {"data", "visual"} & set(asset.get("roles") or [])
        ),
        next(iter(source_assets.values()), None),
    )
    if isinstance(chosen, dict) and chosen.get("href"):
        assets["source"] = {
            "href": chosen["href"],
            "type": chosen.get("type", "image/tiff; application=geotiff"),
            "roles": ["data", "source"],
            "title": "Source raster (the chip is a window of it, see grid:row/grid:col)",
        }
    return assets


def _bbox(geometry: dict[str, Any]) -> list[float]:
    ring = geometry["coordinates"][0]
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    return [min(xs), min(ys), max(xs), max(ys)]


def apply_fields(
    item: dict[str, Any], include: Sequence[str] | None, exclude: Sequence[str] | None
) -> dict[str, Any]:
    """The Fields extension as stac-api-validator 0.6.8 checks it.

    No `fields`: the whole item. Includes: only those, plus id, type, stac_version and
    collection. Excludes with no `include` at all: the item without them; with an empty
    `include`: the default set without them. A path both included and excluded, or an excluded
    parent of an included path, stays (the include is more specific).
    """
    if include is None and exclude is None:
        return item
    exclude = tuple(exclude or ())
    if include:
        result: dict[str, Any] = {}
        for path in (*_ALWAYS, *include):
            _copy_path(item, result, path.split("."))
    elif include is None and exclude:
        result = copy.deepcopy(item)
    else:
        result = {}
        for path in _DEFAULT_FIELDS:
            _copy_path(item, result, path.split("."))
    for path in exclude:
        if path in _ALWAYS or any(i == path or i.startswith(path + ".") for i in include or ()):
            continue
        _delete_path(result, path.split("."))
    return result


def _copy_path(source: dict[str, Any], target: dict[str, Any], parts: list[str]) -> None:
    head = parts[0]
    if head not in source:
        return
    if len(parts) == 1:
        target[head] = copy.deepcopy(source[head])
    elif isinstance(source[head], dict):
        child = target.setdefault(head, {})
        if isinstance(child, dict):
            _copy_path(source[head], child, parts[1:])


def _delete_path(target: dict[str, Any], parts: list[str]) -> None:
    if len(parts) == 1:
        target.pop(parts[0], None)
    elif isinstance(target.get(parts[0]), dict):
        _delete_path(target[parts[0]], parts[1:])


def queryables_document(url: str, title: str) -> dict[str, Any]:
    kinds: dict[str, dict[str, Any]] = {
        "string": {"type": "string"},
        "number": {"type": "number"},
        "integer": {"type": "integer"},
        "datetime": {"type": "string", "format": "date-time"},
        "geometry": {"$ref": "https://geojson.org/schema/Geometry.json"},
        "array": {"type": "array", "items": {"type": "string"}},
    }
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": title,
        "properties": {
            name: {"title": q.description, **kinds[q.kind]} for name, q in QUERYABLES.items()
        },
        "additionalProperties": False,
    }
