"""STAC documents: landing page, conformance, collections, items, the Fields extension (pure)."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from geomelt.db.queries.filters import QUERYABLES

__all__ = [
    "CONFORMANCE",
    "SEMANTIC_SEARCH",
    "Hrefs",
    "apply_fields",
    "collection_document",
    "collection_matches",
    "item_document",
    "landing_document",
    "queryables_document",
    "scene_document",
]

STAC_VERSION = "1.1.0"
GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.1"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SEMANTIC_SEARCH = "https://geomelt.dev/stac-api/semantic-search/v1.0.0"
SEMANTIC_SEARCH_SCHEMA = f"{SEMANTIC_SEARCH}/schema.json"
PROJECTION_SCHEMA = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_SCHEMA = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
EO_SCHEMA = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

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
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0-rc.1/collection-search",
    "https://api.stacspec.org/v1.0.0-rc.1/collection-search#free-text",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/simple-query",
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


def collection_matches(
    summary: Any,
    *,
    terms: Sequence[str] = (),
    bbox: tuple[float, float, float, float] | None = None,
    interval: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
) -> bool:
    """Collection search: any free-text term in the id or description, the extent intersecting
    `bbox` (lon/lat), the temporal extent overlapping `interval` (open ends allowed)."""
    text = f"{summary.collection} chips of the source collection {summary.collection}".lower()
    if terms and not any(term.lower() in text for term in terms):
        return False
    if bbox is not None:
        west, south, east, north = bbox
        if None in (summary.west, summary.south, summary.east, summary.north):
            return False
        # west > east: the box crosses the antimeridian (two boxes, east and west of it).
        spans = [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]
        if not any(summary.west <= e and summary.east >= w for w, e in spans):
            return False
        if summary.south > north or summary.north < south:
            return False
    start, end = interval
    if start is not None and (summary.end is None or summary.end < start):
        return False
    return not (end is not None and (summary.start is None or summary.start > end))


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


def item_document(
    base: str, row: Any, *, rank: int | None = None, hrefs: Hrefs | None = None
) -> dict[str, Any]:
    """A chip as a STAC Item that loaders read without hints (odc-stac, stackstac).

    Its assets are the source assets the chip was read from, with the projection of the chip's
    window on their grid (`proj:code`/`proj:epsg`, `proj:shape`, `proj:transform`), so a loader
    given only the item reads exactly the chip's pixels; `raster:bands` and `eo:bands` name the
    bands. `derived_from` is the scene item as this API publishes it.
    """
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
    resolve = hrefs or Hrefs(base)
    assets = _thumbnail(href, row)
    raster = chip_raster(row, source, resolve)
    if raster is not None:
        properties.update(raster.properties)
        assets.update(raster.assets)
        extensions += raster.extensions
    collection_href = f"{base}/collections/{collection}"
    links = [
        _link("self", href, GEOJSON),
        _link("root", f"{base}/", JSON),
        _link("parent", collection_href, JSON),
        _link("collection", collection_href, JSON),
        _link("derived_from", scene_href(base, row.collection, row.source_item_id), GEOJSON),
    ]
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
        "assets": assets,
    }


def scene_href(base: str, collection: str, scene_item_id: str) -> str:
    return f"{base}/collections/{quote(collection, safe='')}/scenes/{quote(scene_item_id, safe='')}"


def scene_document(
    base: str, collection: str, item: dict[str, Any], hrefs: Hrefs
) -> dict[str, Any]:
    """The scene (source) item as ingested, with hrefs that stay valid and this API's links.

    Its `geomelt:read` property records which assets and bands were read, on which grid, and
    why; a link `via` keeps the original item's URL when it is not a local, temporary one.
    """
    document = copy.deepcopy(item)
    href = scene_href(base, collection, str(item.get("id")))
    original = next(
        (
            link.get("href")
            for link in item.get("links") or []
            if isinstance(link, dict) and link.get("rel") == "self"
        ),
        None,
    )
    links = [
        _link("self", href, GEOJSON),
        _link("root", f"{base}/", JSON),
        _link("collection", f"{base}/collections/{quote(collection, safe='')}", JSON),
    ]
    if isinstance(original, str) and not hrefs.is_local(collection, original):
        links.append(_link("via", original, GEOJSON))
    document["links"] = links
    for asset in (document.get("assets") or {}).values():
        if isinstance(asset, dict) and isinstance(asset.get("href"), str):
            asset["href"] = hrefs.resolve(collection, asset["href"])
    document.setdefault("stac_version", STAC_VERSION)
    return document


class Hrefs:
    """Asset hrefs that stay valid: a local folder's files through this API's /files route.

    `local` maps the collections ingested from a local folder to that folder; their assets
    pointed at a temporary loopback file server during ingestion, whose port is dead once the
    ingest ends, so they are rewritten to `{base}/files/{collection}/{file name}`. Every other
    href (a remote catalog's) is the original one.
    """

    def __init__(self, base: str, local: Mapping[str, Any] | None = None) -> None:
        self.base = base
        self.local = local or {}

    def is_local(self, collection: str, href: str) -> bool:
        return collection in self.local and urlsplit(href).hostname in _LOOPBACK

    def resolve(self, collection: str, href: str) -> str:
        if not self.is_local(collection, href):
            return href
        name = urlsplit(href).path.rsplit("/", 1)[-1]
        return f"{self.base}/files/{quote(collection, safe='')}/{name}"


@dataclass(frozen=True)
class ChipRaster:
    properties: dict[str, Any]
    assets: dict[str, Any]
    extensions: list[str]


def chip_raster(row: Any, source: dict[str, Any], hrefs: Hrefs) -> ChipRaster | None:
    """Projection and band metadata of a chip, from the scene's `geomelt:read` record.

    Scenes ingested before that record existed fall back to the source item's own projection
    (the native grid, which is what they were read on) and the asset keys chosen then.
    """
    source_assets = source.get("assets") or {}
    properties = source.get("properties") or {}
    record = properties.get("geomelt:read")
    if not isinstance(record, dict):
        record = _legacy_record(source)
        if record is None:
            return None
    keys = [k for k in record.get("assets") or [] if isinstance(source_assets.get(k), dict)]
    if not keys:
        return None
    chip: dict[str, Any] = {}
    window = _window(row)
    transform = record.get("proj:transform")
    code = record.get("proj:code")
    if window is not None and isinstance(transform, list) and len(transform) >= 6:
        x, y, width, height = window
        a, b, c, d, e, f = (float(v) for v in transform[:6])
        chip["proj:code"] = code
        if isinstance(code, str) and code.upper().startswith("EPSG:"):
            # stackstac 0.5 reads proj:epsg only.
            chip["proj:epsg"] = int(code.split(":", 1)[1])
        chip["proj:shape"] = [height, width]
        chip["proj:transform"] = [a, b, a * x + b * y + c, d, e, d * x + e * y + f]
    assets = {
        key: _chip_asset(source_assets[key], key, record, hrefs.resolve(row.collection, href))
        for key in keys
        if isinstance(href := source_assets[key].get("href"), str)
    }
    if len(keys) == 1 and keys[0] in assets:
        assets.update(_band_vrts(source_assets[keys[0]], record, hrefs, row.collection, assets))
    extensions = [PROJECTION_SCHEMA] if chip else []
    return ChipRaster(chip, assets, [*extensions, RASTER_SCHEMA, EO_SCHEMA])


def _band_vrts(
    asset: dict[str, Any],
    record: dict[str, Any],
    hrefs: Hrefs,
    collection: str,
    taken: Mapping[str, Any],
) -> dict[str, Any]:
    """Single-band assets (GDAL VRTs served by /files) of a local multi-band asset's chosen
    bands: stackstac reads only single-band assets."""
    href = asset.get("href")
    if not isinstance(href, str) or not hrefs.is_local(collection, href):
        return {}
    indexes = record.get("bands") or []
    names = record.get("names") or []
    if len(indexes) != len(names) or len(indexes) < 2:
        return {}
    data_type = record.get("data_type")
    vrts = {}
    for index, name in zip(indexes, names, strict=True):
        key = str(name)
        if key in taken or not isinstance(index, int):
            continue
        vrts[key] = {
            "href": f"{hrefs.resolve(collection, href)}.b{index}.vrt",
            "type": "application/xml",
            "roles": ["data"],
            "title": f"Band {index} ({name}) of the source file, as a single-band GDAL VRT",
            "eo:bands": [{"name": key, "common_name": key}],
            "raster:bands": [{"data_type": data_type}] if data_type else [{}],
        }
    return vrts


def _window(row: Any) -> tuple[int, int, int, int] | None:
    values = [getattr(row, f"window_{name}_px", None) for name in ("x", "y", "width", "height")]
    numbers = [int(v) for v in values if v is not None]
    if len(numbers) != 4:
        return None
    return numbers[0], numbers[1], numbers[2], numbers[3]


def _chip_asset(
    asset: dict[str, Any], key: str, record: dict[str, Any], href: str
) -> dict[str, Any]:
    keys = record.get("assets") or []
    band_indexes = record.get("bands") or []
    names = record.get("names") or []
    result: dict[str, Any] = {
        "href": href,
        "type": asset.get("type", "image/tiff; application=geotiff"),
        "roles": ["data", *(r for r in asset.get("roles") or [] if r == "visual")],
        "title": asset.get("title") or f"{key} of the source scene (the chip's window of it)",
    }
    raster_bands = asset.get("raster:bands")
    eo_bands = asset.get("eo:bands")
    if len(keys) == 1:
        count = max([len(raster_bands or []), len(eo_bands or []), *band_indexes, 1])
        chosen = dict(zip(band_indexes, names, strict=False))
    else:
        count = 1
        chosen = {1: names[keys.index(key)]} if key in keys and len(names) == len(keys) else {}
    if not isinstance(raster_bands, list) or not raster_bands:
        band = {"data_type": record.get("data_type")} if record.get("data_type") else {}
        raster_bands = [dict(band) for _ in range(count)]
    if not isinstance(eo_bands, list) or not any(
        isinstance(b, dict) and b.get("common_name") for b in eo_bands
    ):
        eo_bands = [
            {"name": chosen.get(i, f"b{i}"), **({"common_name": chosen[i]} if i in chosen else {})}
            for i in range(1, count + 1)
        ]
    result["raster:bands"] = raster_bands
    result["eo:bands"] = eo_bands
    return result


def _legacy_record(source: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a scene ingested before `geomelt:read`: native grid, keys chosen by name."""
    assets = source.get("assets") or {}
    properties = source.get("properties") or {}
    for keys in (("red", "green", "blue"), ("visual",), ("pan",)):
        if all(isinstance(assets.get(k), dict) for k in keys):
            break
    else:
        return None
    grid = {**properties, **{k: v for k, v in assets[keys[0]].items() if k.startswith("proj:")}}
    code = grid.get("proj:code")
    if code is None and isinstance(grid.get("proj:epsg"), int):
        code = f"EPSG:{grid['proj:epsg']}"
    names = ["pan"] if keys == ("pan",) else ["red", "green", "blue"]
    return {
        "assets": list(keys),
        "bands": [1] if keys == ("pan",) else [1, 1, 1] if len(keys) == 3 else [1, 2, 3],
        "names": names,
        "proj:code": code,
        "proj:transform": grid.get("proj:transform"),
        "proj:shape": grid.get("proj:shape"),
    }


def _thumbnail(href: str, row: Any) -> dict[str, Any]:
    if not row.thumbnail_media_type:
        return {}
    return {
        "thumbnail": {
            "href": f"{href}/thumbnail",
            "type": row.thumbnail_media_type,
            "roles": ["thumbnail"],
            "title": "Chip thumbnail",
        }
    }


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
