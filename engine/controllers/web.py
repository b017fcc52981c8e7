"""The search page: our own HTML/CSS/JS at /app, Leaflet from the XStatic-Leaflet package.

The STAC landing page stays JSON at `/` (pystac-client and stac-api-validator read it); the page
lives beside it and calls the same API (`/collections`, `/search`) with relative URLs, so it
also works behind a proxy prefix. Leaflet comes from the installed XStatic-Leaflet package's
folder: one `pip install` provides it, with no CDN, no npm and no copy in this repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xstatic.pkg.leaflet
from litestar import Controller, MediaType, Request, Response, Router, get
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

__all__ = ["WebController", "web_routers"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
LEAFLET_DIR = Path(xstatic.pkg.leaflet.BASE_DIR)


class WebController(Controller):
    path = "/app"
    include_in_schema = False

    @get("/", media_type=MediaType.HTML, cache=False)
    async def page(self, request: Request[Any, Any, Any]) -> Response[bytes] | Redirect:
        # The page's URLs are relative to /app: /app/ would resolve them one level too deep.
        if request.url.path.endswith("/"):
            return Redirect(request.url.path.rstrip("/"))
        return Response((WEB_DIR / "index.html").read_bytes(), media_type=MediaType.HTML)


def web_routers() -> list[Router]:
    """Static files of the page (/app/static) and of Leaflet (/app/leaflet)."""
    return [
        create_static_files_router(
            path="/app/static", directories=[WEB_DIR], include_in_schema=False
        ),
        create_static_files_router(
            path="/app/leaflet", directories=[LEAFLET_DIR], include_in_schema=False
        ),
    ]
