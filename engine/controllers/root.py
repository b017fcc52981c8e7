"""Landing page, conformance, queryables and the API description."""

from __future__ import annotations

import html
from typing import Any

from litestar import Controller, MediaType, Request, Response, get
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ServiceUnavailable
from ..stac import CONFORMANCE, OPENAPI, landing_document, queryables_document
from .common import base_url, service

__all__ = ["RootController"]


class RootController(Controller):
    path = "/"
    tags = ("Core",)

    @get(
        "/",
        summary="Landing page",
        sync_to_thread=True,
        description=(
            "The root Catalog: conformance classes, links to collections, search, queryables and "
            "this API description, and the semantic-search limits (`semantic_search`)."
        ),
    )
    def landing(self, request: Request[Any, Any, Any]) -> Response[Any]:
        search = service(request)
        config = request.app.state.config
        semantic = {
            "model": search.model_label,
            "dimensions": int(search.model.search_dim),
            "max_q_length": config.max_q_length,
            "max_similar_to": config.max_similar_to,
        }
        collections = [summary.collection for summary in search.collections()]
        document = landing_document(
            base_url(request), title=config.title, collections=collections, semantic=semantic
        )
        return Response(document, media_type=MediaType.JSON)

    @get(
        "/conformance",
        summary="Conformance classes",
        description=(
            "The conformance URIs, identical to the landing page's `conformsTo`; includes "
            "`https://geomelt.dev/stac-api/semantic-search/v1.0.0` for `q` and `#similar-to`."
        ),
    )
    async def conformance(self) -> dict[str, Any]:
        return {"conformsTo": CONFORMANCE}

    @get(
        "/queryables",
        summary="Queryables of all collections",
        description=("JSON Schema of the properties usable in `filter` (CQL2) and `sortby`."),
    )
    async def queryables(self, request: Request[Any, Any, Any]) -> Response[Any]:
        url = f"{base_url(request)}/queryables"
        document = queryables_document(url, "Queryables of all collections")
        return Response(document, media_type="application/schema+json")

    @get(
        "/health",
        summary="Health",
        sync_to_thread=True,
        description="200 when the database answers a query (and the model is loaded); 503 with "
        "the reason otherwise. For load balancers and orchestrators.",
    )
    def health(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        search = service(request)
        try:
            with search.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
            raise ServiceUnavailable(f"database: not answering ({reason})") from exc
        return {"status": "ok", "database": "ok", "model": search.model_label}

    @get("/api", include_in_schema=False, media_type=OPENAPI)
    async def openapi(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return Response(request.app.openapi_schema.to_schema(), media_type=OPENAPI)

    @get("/api.html", include_in_schema=False, media_type=MediaType.HTML)
    async def openapi_html(self, request: Request[Any, Any, Any]) -> str:
        schema = request.app.openapi_schema.to_schema()
        sections = []
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if not isinstance(operation, dict):
                    continue
                sections.append(
                    f"<h2>{html.escape(method.upper())} {html.escape(path)}</h2>"
                    f"<p><b>{html.escape(operation.get('summary', ''))}</b></p>"
                    f"<p>{html.escape(operation.get('description', ''))}</p>"
                )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>GeoMELT Search API</title>"
            "</head><body><h1>GeoMELT Search API</h1><p>Machine-readable: "
            "<a href='api'>OpenAPI 3.1</a></p>" + "".join(sections) + "</body></html>"
        )
