"""Collections, their items (OGC API Features), single items, thumbnails and queryables."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, MediaType, Request, Response, get

from ..errors import ItemNotFound
from ..params import SearchRequest, parse_get
from ..stac import GEOJSON, collection_document, item_document, queryables_document
from .common import base_url, item_collection, service
from .docs import SEARCH_DESCRIPTION, query

__all__ = ["CollectionsController"]

Q = str | None


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
        description=("Source collections that have chips indexed by the served model."),
    )
    def list_collections(self, request: Request[Any, Any, Any]) -> Response[Any]:
        base = base_url(request)
        collections = [collection_document(base, s) for s in service(request).collections()]
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
        bbox: Annotated[Q, query("bbox")] = None,
        datetime: Annotated[Q, query("datetime")] = None,
        limit: Annotated[Q, query("limit")] = None,
        sortby: Annotated[Q, query("sortby")] = None,
        fields: Annotated[Q, query("fields")] = None,
        filter_: Annotated[Q, query("filter")] = None,
        filter_lang: Annotated[Q, query("filter-lang")] = None,
        q: Annotated[Q, query("q")] = None,
        similar_to: Annotated[Q, query("similar_to")] = None,
        token: Annotated[Q, query("token")] = None,
    ) -> Response[Any]:
        _summary(request, collection_id)
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
        return Response(item_document(base_url(request), result.rows[0]), media_type=GEOJSON)

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
