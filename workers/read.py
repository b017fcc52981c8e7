"""Reading a STAC item's RGB (or grey) pixels in its own CRS, strip by strip.

Separate single-band assets (red, green, blue; or pan) are stacked with stackstac; one multi-band
asset (visual, with its alpha or nodata mask) is read with rasterio, since stackstac reads only
single-band assets. Both read COGs over HTTP with Range requests, in the item's own CRS at the
source resolution (the native one by default).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import rasterio
import stackstac
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .errors import ChipError, SourceUnavailable
from .grid import Transform, ring_is_valid
from .radiometry import Radiometry, choose_radiometry

__all__ = ["SceneRaster", "check_geometry", "choose_assets", "open_scene"]

logger = logging.getLogger(__name__)

AUTO_ASSETS: tuple[tuple[str, ...], ...] = (
    ("red", "green", "blue"),
    ("visual",),
    ("pan",),
)
# Metres per degree of latitude: turns a resolution in metres into degrees for geographic CRSs.
METRES_PER_DEGREE = 111_320.0
# Words in GDAL/curl messages that mean the network, not the file, failed: worth a retry.
_NETWORK_WORDS = (
    "http response code",
    "http error",
    "curl error",
    "timed out",
    "timeout",
    "connection",
    "couldn't connect",
    "could not resolve",
)


def check_geometry(item: Mapping[str, Any]) -> None:
    """Raise ChipError unless the item's geometry is a usable (Multi)Polygon."""
    item_id = item.get("id")
    geometry = item.get("geometry")
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if kind == "Polygon" and isinstance(coordinates, list):
        polygons = [coordinates]
    elif kind == "MultiPolygon" and isinstance(coordinates, list):
        polygons = coordinates
    else:
        raise ChipError(
            f"item {item_id!r}: geometry {json_snippet(geometry)} is not a Polygon or "
            "MultiPolygon; fix the item's geometry in the catalog"
        )
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon or not all(map(ring_is_valid, polygon)):
            raise ChipError(
                f"item {item_id!r}: geometry {json_snippet(geometry)} has a broken ring (needs "
                ">= 4 closed lon/lat positions in range, non-zero area); fix the item's geometry"
            )


def json_snippet(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def choose_assets(item: Mapping[str, Any], requested: Sequence[str]) -> tuple[str, ...]:
    """The asset keys to read: the requested ones, or the first complete automatic choice."""
    available = item.get("assets") or {}
    usable = {
        key for key, asset in available.items() if isinstance(asset, dict) and asset.get("href")
    }
    if requested:
        missing = [key for key in requested if key not in usable]
        if not missing:
            return tuple(requested)
        raise ChipError(
            f"item {item.get('id')!r}: no usable asset {', '.join(missing)}; it has "
            f"{', '.join(sorted(usable)) or 'no assets'}; change the source's --assets"
        )
    for choice in AUTO_ASSETS:
        if all(key in usable for key in choice):
            return choice
    raise ChipError(
        f"item {item.get('id')!r}: no usable RGB assets (looked for red+green+blue, visual, pan); "
        f"it has {', '.join(sorted(usable)) or 'no assets'}; pass --assets to name them"
    )


def _item_epsg(item: Mapping[str, Any], fallback: int | None) -> int | None:
    properties = item.get("properties") or {}
    epsg = properties.get("proj:epsg")
    if isinstance(epsg, int):
        return epsg
    code = properties.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return fallback


def _gdal_options(timeout_s: float) -> dict[str, Any]:
    return {
        "GDAL_HTTP_TIMEOUT": str(max(1, round(timeout_s))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, round(timeout_s))),
        # The job queue retries with back-off; GDAL retrying too would multiply the waits.
        "GDAL_HTTP_MAX_RETRY": "0",
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_USE_HEAD": "NO",
    }


def _raise_read_error(exc: BaseException, item_id: Any, href: str) -> None:
    text = str(exc)
    if any(word in text.lower() for word in _NETWORK_WORDS):
        raise SourceUnavailable(
            f"item {item_id!r}: asset {href} could not be fetched ({text.strip()[:300]}); "
            "check that the server is up and the URL exists (retried with back-off)"
        ) from exc
    raise ChipError(
        f"item {item_id!r}: asset {href} is not a readable GeoTIFF ({text.strip()[:300]}); "
        "the file is corrupt or truncated; fix or remove the asset"
    ) from exc


class _StripReader(Protocol):
    def __call__(self, y0: int, y1: int) -> np.ndarray: ...


@dataclass
class SceneRaster:
    """A scene's pixel grid: (C, H, W) with C = 3 (RGB) or 1 (grey), NaN where nodata."""

    item_id: str
    epsg: int
    transform: Transform
    width_px: int
    height_px: int
    radiometry: Radiometry
    geographic: bool
    _read: _StripReader

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 (exclusive) as float32 (C, y1 - y0, W)."""
        return self._read(y0, y1)


def _resolution_in_crs(resolution_m: float | None, geographic: bool) -> float | None:
    if resolution_m is None:
        return None
    return resolution_m / METRES_PER_DEGREE if geographic else resolution_m


@contextlib.contextmanager
def open_scene(
    item: Mapping[str, Any],
    requested_assets: Sequence[str],
    resolution_m: float | None,
    *,
    timeout_s: float = 30.0,
) -> Iterator[SceneRaster]:
    """Open the item's RGB pixels; raises ChipError or SourceUnavailable with the reason."""
    item_id = item.get("id")
    check_geometry(item)
    keys = choose_assets(item, requested_assets)
    first_href = item["assets"][keys[0]]["href"]
    with rasterio.Env(**_gdal_options(timeout_s)):
        try:
            dataset = rasterio.open(first_href)
        except RasterioError as exc:
            _raise_read_error(exc, item_id, first_href)
        with dataset:
            if dataset.crs is None:
                raise ChipError(
                    f"item {item_id!r}: asset {first_href} has no CRS; georeference the file"
                )
            radiometry = choose_radiometry(dataset.dtypes[0])
            geographic = bool(dataset.crs.is_geographic)
            epsg = _item_epsg(item, dataset.crs.to_epsg())
            if epsg is None:
                raise ChipError(
                    f"item {item_id!r}: CRS {dataset.crs} has no EPSG code; set proj:code"
                )
            resolution = _resolution_in_crs(resolution_m, geographic)
            if len(keys) == 1 and dataset.count >= 3:
                yield _multiband(str(item_id), dataset, epsg, resolution, radiometry, geographic)
            else:
                yield _stacked(item, keys, epsg, resolution, radiometry, geographic, timeout_s)


def _multiband(
    item_id: str,
    dataset: Any,
    epsg: int,
    resolution: float | None,
    radiometry: Radiometry,
    geographic: bool,
) -> SceneRaster:
    # Output grid: native, or scaled to the requested resolution (GDAL picks overviews).
    scale = 1.0 if resolution is None else resolution / abs(dataset.transform.a)
    width = max(1, round(dataset.width / scale))
    height = max(1, round(dataset.height / scale))
    scale_x, scale_y = dataset.width / width, dataset.height / height
    transform = dataset.transform @ Affine.scale(scale_x, scale_y)

    def read(y0: int, y1: int) -> np.ndarray:
        window = Window(0, y0 * scale_y, dataset.width, (y1 - y0) * scale_y)
        shape = (y1 - y0, width)
        try:
            values: np.ndarray = dataset.read(
                [1, 2, 3], window=window, out_shape=(3, *shape), out_dtype="float32"
            )
            # The dataset mask combines alpha, nodata and per-dataset masks: 0 = no data.
            mask = dataset.dataset_mask(window=window, out_shape=shape)
        except RasterioError as exc:
            _raise_read_error(exc, item_id, dataset.name)
        values[:, mask == 0] = np.nan
        return values

    return SceneRaster(
        item_id, epsg, tuple(transform)[:6], width, height, radiometry, geographic, read
    )


def _stacked(
    item: Mapping[str, Any],
    keys: Sequence[str],
    epsg: int,
    resolution: float | None,
    radiometry: Radiometry,
    geographic: bool,
    timeout_s: float,
) -> SceneRaster:
    item_id = str(item.get("id"))
    try:
        # epsg is passed explicitly: stackstac 0.5 reads proj:epsg only, not proj:code.
        stack = stackstac.stack(
            [dict(item)],
            assets=list(keys),
            epsg=epsg,
            resolution=resolution,
            dtype=np.dtype("float32"),
            fill_value=np.float32(np.nan),
            rescale=False,
            snap_bounds=False,
            chunksize=1024,
            gdal_env=stackstac.DEFAULT_GDAL_ENV.updated(always=_gdal_options(timeout_s)),
        )
    except (ValueError, KeyError) as exc:
        raise ChipError(
            f"item {item_id!r}: assets {', '.join(keys)} cannot be stacked ({exc}); "
            "the item needs proj:shape and proj:transform, or --resolution"
        ) from exc
    data = stack.isel(time=0)
    height, width = int(data.sizes["y"]), int(data.sizes["x"])

    def read(y0: int, y1: int) -> np.ndarray:
        try:
            values = data.isel(y=slice(y0, y1)).compute(scheduler="threads").to_numpy()
        except (RasterioError, RuntimeError) as exc:
            _raise_read_error(exc, item_id, ", ".join(item["assets"][k]["href"] for k in keys))
        return np.asarray(values, dtype=np.float32)

    transform = tuple(stack.attrs["transform"])[:6]
    return SceneRaster(item_id, epsg, transform, width, height, radiometry, geographic, read)
