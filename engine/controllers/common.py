"""Helpers shared by the controllers: absolute URLs and ItemCollection responses."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response

from ..params import SearchRequest
from ..service import SearchResult, SearchService
from ..stac import GEOJSON, Hrefs, apply_fields, item_document

__all__ = ["base_url", "hrefs", "item_collection", "service"]


def service(request: Request[Any, Any, Any]) -> SearchService:
    return request.app.state.service  # type: ignore[no-any-return]


def base_url(request: Request[Any, Any, Any]) -> str:
    """Absolute base of links: the configured one, else the request's; X-Forwarded-Host and
    -Proto count only from a configured trusted proxy."""
    config = request.app.state.config
    if config.base_url:
        return str(config.base_url).rstrip("/")
    proto = request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    if _from_trusted_proxy(request, config.trusted_proxies):
        # A chain of proxies appends: the first value is what the client asked for.
        forwarded_proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
        if forwarded_proto in ("http", "https"):
            proto = forwarded_proto
        host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() or host
    root = request.scope.get("root_path", "")
    return f"{proto}://{host}{root}".rstrip("/")


def _from_trusted_proxy(request: Request[Any, Any, Any], trusted: tuple[Any, ...]) -> bool:
    if not trusted or request.client is None:
        return False
    try:
        peer = ip_address(request.client.host)
    except ValueError:  # not an IP address (a Unix socket, a test client)
        return False
    return any(peer in network for network in trusted)


def item_collection(
    request: Request[Any, Any, Any],
    search: SearchRequest,
    result: SearchResult,
    *,
    method: str,
    self_href: str | None = None,
    next_params: dict[str, str] | None = None,
) -> Response[Any]:
    base = base_url(request)
    resolve = hrefs(request)
    features = []
    for position, row in enumerate(result.rows, start=result.rank_offset + 1):
        item = item_document(base, row, rank=position if result.ranked else None, hrefs=resolve)
        features.append(apply_fields(item, search.fields_include, search.fields_exclude))
    href = self_href or f"{base}{request.url.path}" + (
        f"?{request.url.query}" if request.url.query else ""
    )
    links: list[dict[str, Any]] = [
        {"rel": "self", "href": href, "type": GEOJSON},
        {"rel": "root", "href": f"{base}/", "type": "application/json"},
    ]
    if result.next_token:
        links.append(_next_link(request, base, search, result.next_token, method, next_params))
    body: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": features,
        "links": links,
        "numberReturned": len(features),
    }
    if result.number_matched is not None:
        body["numberMatched"] = result.number_matched
    headers = dict(result.headers)
    if result.info is not None:
        body["search:info"] = result.info
        headers["X-Search-Strategy"] = (
            f"{result.info['strategy']}; estimated={result.info['estimated_candidates']}"
        )
    return Response(body, media_type=GEOJSON, headers=headers)


def _next_link(
    request: Request[Any, Any, Any],
    base: str,
    search: SearchRequest,
    token: str,
    method: str,
    next_params: dict[str, str] | None,
) -> dict[str, Any]:
    if method == "POST":
        return {
            "rel": "next",
            "href": f"{base}/search",
            "type": GEOJSON,
            "method": "POST",
            # The whole original body rides along: clients that ignore `merge` keep the query.
            "body": {**search.ranking_body, "token": token},
            "merge": True,
        }
    if next_params is not None:  # e.g. an image search continues as GET /search?image_ref=...
        params = [(k, v) for k, v in next_params.items() if k != "token"]
        path = "/search"
    else:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        path = request.url.path
    params.append(("token", token))
    return {
        "rel": "next",
        "href": f"{base}{path}?{urlencode(params)}",
        "type": GEOJSON,
        "method": "GET",
    }


def hrefs(request: Request[Any, Any, Any]) -> Hrefs:
    """Asset hrefs of this request: local collections' files through this API's /files."""
    return Hrefs(base_url(request), request.app.state.config.local_files)
