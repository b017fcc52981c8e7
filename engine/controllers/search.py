"""Item Search (GET and POST) and search by an uploaded image."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body

from ..errors import InvalidParameter, PayloadTooLarge, UnsupportedMediaType
from ..params import parse_get, parse_post
from ..stac import GEOJSON
from .common import item_collection, service
from .docs import SEARCH_BODY_EXAMPLES, SEARCH_DESCRIPTION

__all__ = ["SearchController"]


class SearchController(Controller):
    path = "/search"
    tags = ("Item Search",)

    @get(
        "/",
        summary="Search items (GET)",
        description=SEARCH_DESCRIPTION,
        sync_to_thread=True,
        media_type=GEOJSON,
    )
    def search_get(self, request: Request[Any, Any, Any]) -> Response[Any]:
        # The query parameters are parse_get's (params.GET_PARAMETERS; docs.py documents them).
        config = request.app.state.config
        search = parse_get(dict(request.query_params), config)
        result = service(request).search(search)
        return item_collection(request, search, result, method="GET")

    @post(
        "/",
        summary="Search items (POST)",
        description=SEARCH_DESCRIPTION,
        status_code=200,
        sync_to_thread=True,
        media_type=GEOJSON,
    )
    def search_post(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[
            dict[str, Any],
            Body(
                title="Search body",
                description="Item Search parameters as JSON; unknown members are ignored.",
                examples=SEARCH_BODY_EXAMPLES,
            ),
        ],
    ) -> Response[Any]:
        config = request.app.state.config
        content_type = request.headers.get("content-type", "")
        if not content_type.split(";")[0].strip().lower().endswith("json"):
            raise UnsupportedMediaType("body: POST /search takes application/json")
        length = int(request.headers.get("content-length") or 0)
        if length > config.max_body_bytes:
            raise PayloadTooLarge(f"body: {length} bytes, more than {config.max_body_bytes}")
        search = parse_post(data, config)
        result = service(request).search(search)
        return item_collection(request, search, result, method="POST")

    @post(
        "/image",
        summary="Search by an uploaded image",
        status_code=200,
        sync_to_thread=True,
        media_type=GEOJSON,
        description=(
            "multipart/form-data with `file` (PNG, JPEG or GeoTIFF; a GeoTIFF's red, green "
            "and blue bands are used, non-8-bit data stretched between its 2nd and 98th "
            "percentiles) and optional GET-style search parameters as further form fields or "
            "in the query string (`collections`, `bbox`, `datetime`, `filter`, `limit`, ...; "
            "a parameter given in both is refused). The image is "
            "embedded with the model's image tower and ranked like `similar_to`; the response's "
            "`search:info.image_ref` can be sent as `image_ref` to /search (next links do)."
        ),
    )
    def search_image(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Response[Any]:
        config = request.app.state.config
        upload = data.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidParameter("file: send the image as a multipart form field named 'file'")
        content = upload.file.read(config.max_upload_bytes + 1)
        reference = service(request).embed_upload(content)
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        query = dict(request.query_params)
        for name in sorted(set(form) & set(query)):
            raise InvalidParameter(
                f"{name}: given both in the query string and as a form field; give it once"
            )
        params = {**query, **form}
        params["image_ref"] = reference
        params.pop("token", None)
        search = parse_get(params, config)
        result = service(request).search(search)
        if result.info is not None:
            result.info["image_ref"] = reference
        return item_collection(request, search, result, method="GET", next_params=params)
