"""Change search (GET/POST /changes) and cell timelines (GET /cells/{cell_id})."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.openapi.spec import Example
from litestar.params import Body, Parameter

from ..change import (
    ChangePage,
    ChangeRequest,
    ChangeService,
    change_feature,
    parse_change_get,
    parse_change_post,
    timeline_document,
)
from ..errors import PayloadTooLarge, UnsupportedMediaType
from ..stac import GEOJSON
from .common import base_url, service
from .docs import query

__all__ = ["CellsController", "ChangesController"]

Q = str | None

CHANGES_DESCRIPTION = """What changed in a region between two date ranges, per ground-grid cell.

Chips of every acquisition are cut on a grid fixed to the ground (UTM zone, GSD level, chip
size), so the same cell id names the same ground at every date. For each cell of the region seen
in both ranges, the most complete chip of each range (highest valid_fraction, the latest among
equals) is compared:
* without `q`: `change:score` = cosine distance of the two chips' embeddings (0 = unchanged);
* with `q` ("new buildings", "cleared forest"): `change:score` = similarity of the after chip
  to `q` minus that of the before chip (how much more the cell matches `q` after than before).

Parameters: a region (`bbox` or `intersects`, required; `collections` optional), `before` and
`after` (ranges `start/end` of RFC 3339 date-times or dates, `..` open; not a single date; the
two must not overlap), optional `q`, `limit`, `token`. Cells are GeoJSON Features (the cell's
footprint) with `change:score`, `change:distance`, `change:rank` and both chips (`before`,
`after`: id, datetime, caption, valid_fraction, links to the item and its thumbnail) and a
`timeline` link. Pages follow the `next` link (signed keyset token). A range without any
acquisition in the region is a 400 naming it and the nearest acquisition date.
"""


def _range(name: str, example: str) -> Any:
    return Parameter(
        query=name,
        required=False,
        description=f"The {name} range: start/end (RFC 3339 date-times or dates, .. open); "
        "required, not a single date, not overlapping the other range.",
        examples=[Example(summary=name, value=example)],
    )


def _changes(request: Request[Any, Any, Any]) -> ChangeService:
    return ChangeService(service(request))


def _response(
    request: Request[Any, Any, Any], change: ChangeRequest, page: ChangePage, *, method: str
) -> Response[Any]:
    base = base_url(request)
    features = [
        change_feature(base, row, rank)
        for rank, row in enumerate(page.rows, start=page.rank_offset + 1)
    ]
    href = f"{base}{request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
    links: list[dict[str, Any]] = [
        {"rel": "self", "href": href, "type": GEOJSON},
        {"rel": "root", "href": f"{base}/", "type": "application/json"},
    ]
    if page.next_token and method == "POST":
        links.append(
            {
                "rel": "next",
                "href": f"{base}/changes",
                "type": GEOJSON,
                "method": "POST",
                "body": {**change.body, "token": page.next_token},
                "merge": True,
            }
        )
    elif page.next_token:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        params.append(("token", page.next_token))
        links.append(
            {
                "rel": "next",
                "href": f"{base}/changes?{urlencode(params)}",
                "type": GEOJSON,
                "method": "GET",
            }
        )
    body = {
        "type": "FeatureCollection",
        "features": features,
        "links": links,
        "numberMatched": page.number_matched,
        "numberReturned": len(features),
        "change:info": page.info,
    }
    return Response(body, media_type=GEOJSON)


class ChangesController(Controller):
    path = "/changes"
    tags = ("Change Search",)

    @get(
        "/",
        summary="Change search (GET)",
        description=CHANGES_DESCRIPTION,
        sync_to_thread=True,
        media_type=GEOJSON,
    )
    def changes_get(
        self,
        request: Request[Any, Any, Any],
        bbox: Annotated[Q, query("bbox")] = None,
        intersects: Annotated[Q, query("intersects")] = None,
        collections: Annotated[Q, query("collections")] = None,
        before: Annotated[Q, _range("before", "2012-01-01/2012-12-31")] = None,
        after: Annotated[Q, _range("after", "2020-01-01/2020-12-31")] = None,
        q: Annotated[Q, query("q")] = None,
        limit: Annotated[Q, query("limit")] = None,
        token: Annotated[Q, query("token")] = None,
    ) -> Response[Any]:
        change = parse_change_get(dict(request.query_params), request.app.state.config)
        return _response(request, change, _changes(request).changes(change), method="GET")

    @post(
        "/",
        summary="Change search (POST)",
        description=CHANGES_DESCRIPTION,
        status_code=200,
        sync_to_thread=True,
        media_type=GEOJSON,
    )
    def changes_post(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[
            dict[str, Any],
            Body(
                title="Change search body",
                description="bbox or intersects, before, after, optional q, collections, limit.",
            ),
        ],
    ) -> Response[Any]:
        config = request.app.state.config
        content_type = request.headers.get("content-type", "")
        if not content_type.split(";")[0].strip().lower().endswith("json"):
            raise UnsupportedMediaType("body: POST /changes takes application/json")
        length = int(request.headers.get("content-length") or 0)
        if length > config.max_body_bytes:
            raise PayloadTooLarge(f"body: {length} bytes, more than {config.max_body_bytes}")
        change = parse_change_post(data, config)
        return _response(request, change, _changes(request).changes(change), method="POST")


class CellsController(Controller):
    path = "/cells"
    tags = ("Change Search",)

    @get(
        "/{cell_id:str}",
        summary="Timeline of a ground-grid cell",
        sync_to_thread=True,
        description=(
            "Every indexed acquisition of one cell (the `id` of a change-search result, e.g. "
            "`utm14n_5m_224px_4283_446`) in date order, each with its chip id, datetime, "
            "caption, valid_fraction and links to the item and thumbnail; 404 if unknown."
        ),
    )
    def timeline(self, request: Request[Any, Any, Any], cell_id: str) -> Response[Any]:
        rows = _changes(request).timeline(cell_id)
        document = timeline_document(base_url(request), cell_id, rows)
        return Response(document, media_type=MediaType.JSON)
