"""Collections, their items (OGC API Features), single items, thumbnails and queryables."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, MediaType, Request, Response, get

from geomelt.db.parsing import InvalidValue, bbox_numbers, parse_bbox, parse_interval

from ..errors import InvalidParameter, ItemNotFound
from ..params import SearchRequest, parse_get
from ..stac import (
    GEOJSON,
    collection_document,
    collection_matches,
    item_document,
    queryables_document,
    scene_document,
)
from .common import base_url, hrefs, item_collection, service
from .docs import SEARCH_DESCRIPTION, query

__all__ = ["CollectionsController"]

Q = str | None


def _bbox(text: str) -> tuple[float, float, float, float]:
    try:
        return parse_bbox(bbox_numbers(text), allow_elevation=False)
    except InvalidValue as exc:
        raise InvalidParameter(str(exc)) from exc


def _interval(text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    try:
        return parse_interval(text)
    except InvalidValue as exc:
        raise InvalidParameter(str(exc)) from exc


def _summary(request: Request[Any, Any, Any], collection_id: str) -> Any:
    summaries = service(request).collections(collection_id)
    if not summaries:
        raise ItemNotFound(f"collection {collection_id!r}: no such collection")
    return summaries[0]


class CollectionsController(Controller):
    path = "/collections"
    tags = ("Collections",)

    @get(
        "/",
        summary="List collections",
        sync_to_thread=True,
        description="Source collections that have chips indexed by the served model. "
        "Collection search: `q` (comma-separated terms, any of them in the id or description), "
        "`bbox` (minx,miny,maxx,maxy in lon/lat: the extent intersects it) and `datetime` "
        "(instant or interval with open ends: the temporal extent overlaps it).",
    )
    def list_collections(
        self,
        request: Request[Any, Any, Any],
        q: Annotated[Q, query("q")] = None,
        bbox: Annotated[Q, query("bbox")] = None,
        datetime: Annotated[Q, query("datetime")] = None,
    ) -> Response[Any]:
        base = base_url(request)
        unknown = sorted(set(request.query_params) - {"q", "bbox", "datetime"})
        if unknown:
            raise InvalidParameter(
                f"{', '.join(unknown)}: not a parameter of /collections; it takes q, bbox, datetime"
            )
        terms = [t.strip() for t in (q or "").split(",") if t.strip()]
        box = _bbox(bbox) if bbox is not None else None
        interval = _interval(datetime) if datetime is not None else (None, None)
        summaries = [
            s
            for s in service(request).collections()
            if collection_matches(s, terms=terms, bbox=box, interval=interval)
        ]
        collections = [collection_document(base, s) for s in summaries]
        body = {
            "collections": collections,
            "links": [
                {"rel": "self", "href": f"{base}/collections", "type": "application/json"},
                {"rel": "root", "href": f"{base}/", "type": "application/json"},
            ],
            "numberMatched": len(collections),
            "numberReturned": len(collections),
        }
        return Response(body, media_type=MediaType.JSON)

    @get(
        "/{collection_id:str}",
        summary="Get a collection",
        sync_to_thread=True,
        description="One collection with its spatial and temporal extent; 404 if unknown.",
    )
    def get_collection(self, request: Request[Any, Any, Any], collection_id: str) -> Response[Any]:
        document = collection_document(base_url(request), _summary(request, collection_id))
        return Response(document, media_type=MediaType.JSON)

    @get(
        "/{collection_id:str}/items",
        summary="Items of a collection",
        sync_to_thread=True,
        media_type=GEOJSON,
        description="OGC API Features items; takes the Item Search "
        "parameters except `collections`.\n\n" + SEARCH_DESCRIPTION,
    )
    def list_items(
        self,
        request: Request[Any, Any, Any],
        collection_id: str,
    ) -> Response[Any]:
        _summary(request, collection_id)
        # The query parameters are parse_get's (params.GET_PARAMETERS; docs.py documents them).
        params = dict(request.query_params)
        search = parse_get(params, request.app.state.config, collection=collection_id)
        result = service(request).search(search)
        return item_collection(request, search, result, method="GET")

    @get(
        "/{collection_id:str}/items/{item_id:str}",
        summary="Get an item",
        sync_to_thread=True,
        media_type=GEOJSON,
        description="One chip as a STAC Item; 404 if unknown.",
    )
    def get_item(
        self, request: Request[Any, Any, Any], collection_id: str, item_id: str
    ) -> Response[Any]:
        search = SearchRequest(collections=(collection_id,), ids=(item_id,), limit=1)
        result = service(request).search(search)
        if not result.rows:
            raise ItemNotFound(f"item {item_id!r}: not found in collection {collection_id!r}")
        document = item_document(base_url(request), result.rows[0], hrefs=hrefs(request))
        return Response(document, media_type=GEOJSON)

    @get(
        "/{collection_id:str}/scenes/{scene_id:str}",
        summary="Get a scene",
        sync_to_thread=True,
        media_type=GEOJSON,
        description="The source item a chip was cut from (its `derived_from`), as ingested: its "
        "assets (local files through /files), and in `geomelt:read` which assets and bands were "
        "read, on which grid, and why; 404 if unknown.",
    )
    def get_scene(
        self, request: Request[Any, Any, Any], collection_id: str, scene_id: str
    ) -> Response[Any]:
        item = service(request).scene(collection_id, scene_id)
        if item is None:
            raise ItemNotFound(f"scene {scene_id!r}: not found in collection {collection_id!r}")
        document = scene_document(base_url(request), collection_id, item, hrefs(request))
        return Response(document, media_type=GEOJSON)

    @get(
        "/{collection_id:str}/items/{item_id:str}/thumbnail",
        summary="Chip thumbnail",
        sync_to_thread=True,
        description="The chip's thumbnail image (JPEG/PNG/WebP bytes).",
    )
    def thumbnail(
        self, request: Request[Any, Any, Any], collection_id: str, item_id: str
    ) -> Response[bytes]:
        found = service(request).thumbnail(collection_id, item_id)
        if found is None:
            raise ItemNotFound(f"item {item_id!r} in {collection_id!r}: no thumbnail")
        content, media_type = found
        return Response(content, media_type=media_type)

    @get(
        "/{collection_id:str}/queryables",
        summary="Queryables of a collection",
        sync_to_thread=True,
        description="JSON Schema of the filterable properties.",
    )
    def queryables(self, request: Request[Any, Any, Any], collection_id: str) -> Response[Any]:
        _summary(request, collection_id)
        url = f"{base_url(request)}/collections/{quote(collection_id, safe='')}/queryables"
        document = queryables_document(url, f"Queryables of {collection_id}")
        return Response(document, media_type="application/schema+json")
