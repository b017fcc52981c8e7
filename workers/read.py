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

from .assets import AssetChoice, check_projection, choose_assets
from .errors import ChipError, SourceUnavailable
from .grid import Transform, ring_is_valid
from .radiometry import Radiometry, choose_radiometry

__all__ = ["SceneRaster", "check_geometry", "choose_assets", "open_scene"]

logger = logging.getLogger(__name__)

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
    """A scene's pixel grid: (C, H, W) with C = 3 (RGB) or 1 (grey), NaN where nodata.

    `choice` is what was read (assets, bands, why); `record()` is the scene's record of it.
    """

    item_id: str
    epsg: int
    transform: Transform
    width_px: int
    height_px: int
    radiometry: Radiometry
    geographic: bool
    _read: _StripReader
    choice: AssetChoice | None = None
    data_type: str | None = None

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 (exclusive) as float32 (C, y1 - y0, W)."""
        return self._read(y0, y1)

    def record(self) -> dict[str, Any]:
        """What was read and on which grid, as JSON: the chips' projection comes from it."""
        return {
            **(self.choice.record() if self.choice else {}),
            "proj:code": f"EPSG:{self.epsg}",
            "proj:shape": [self.height_px, self.width_px],
            "proj:transform": list(self.transform),
            "data_type": self.data_type,
            "radiometry": str(self.radiometry),
        }


def _resolution_in_crs(resolution_m: float | None, geographic: bool) -> float | None:
    if resolution_m is None:
        return None
    return resolution_m / METRES_PER_DEGREE if geographic else resolution_m


def _calibrate(values: np.ndarray, choice: AssetChoice) -> np.ndarray:
    """The item's raster:bands nodata masked (NaN), then scale and offset applied, per channel."""
    for channel in range(values.shape[0]):
        index = min(channel, len(choice.nodata) - 1)
        if index < 0:
            break
        nodata, scale, offset = choice.nodata[index], choice.scales[index], choice.offsets[index]
        if nodata is not None:
            band = values[channel]
            band[(band == nodata) | (np.isnan(band) if np.isnan(nodata) else False)] = np.nan
        if scale is not None or offset is not None:
            values[channel] = values[channel] * (1.0 if scale is None else scale) + (offset or 0.0)
    return values


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
    check_projection(item)
    choice = choose_assets(item, requested_assets)
    keys = choice.keys
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
            if len(keys) == 1 and max(choice.bands) > dataset.count:
                if dataset.count >= 3 or len(choice.bands) == 1:
                    raise ChipError(
                        f"item {item_id!r}: asset {keys[0]!r} has {dataset.count} bands, but "
                        f"its metadata puts {'/'.join(choice.names)} at bands "
                        f"{', '.join(map(str, choice.bands))}; fix the item's bands or pass "
                        "--assets"
                    )
                # An undescribed single-band file: grey.
                choice = AssetChoice(
                    keys, (1,), ("pan",), "pan", choice.reason + "; one band: grey"
                )
            # Scaled integers are physical values (reflectance 0..1 for the catalogs we know).
            scaled = any(s is not None for s in choice.scales)
            data_type = dataset.dtypes[0]
            radiometry = choose_radiometry("float32" if scaled else data_type)
            geographic = bool(dataset.crs.is_geographic)
            epsg = _item_epsg(item, dataset.crs.to_epsg())
            if epsg is None:
                raise ChipError(
                    f"item {item_id!r}: CRS {dataset.crs} has no EPSG code; set proj:code"
                )
            resolution = _resolution_in_crs(resolution_m, geographic)
            if len(keys) == 1 and dataset.count > 1:
                raster = _multiband(
                    str(item_id), dataset, choice, epsg, resolution, radiometry, geographic
                )
            else:
                raster = _stacked(item, choice, epsg, resolution, radiometry, geographic, timeout_s)
            raster.data_type = data_type
            yield raster


def _multiband(
    item_id: str,
    dataset: Any,
    choice: AssetChoice,
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
    indexes = list(choice.bands)

    def read(y0: int, y1: int) -> np.ndarray:
        window = Window(0, y0 * scale_y, dataset.width, (y1 - y0) * scale_y)
        shape = (y1 - y0, width)
        try:
            values: np.ndarray = dataset.read(
                indexes, window=window, out_shape=(len(indexes), *shape), out_dtype="float32"
            )
            # The dataset mask combines alpha, nodata and per-dataset masks: 0 = no data.
            mask = dataset.dataset_mask(window=window, out_shape=shape)
        except RasterioError as exc:
            _raise_read_error(exc, item_id, dataset.name)
        values[:, mask == 0] = np.nan
        return _calibrate(values, choice)

    return SceneRaster(
        item_id, epsg, tuple(transform)[:6], width, height, radiometry, geographic, read, choice
    )


def _with_proj_epsg(item: Mapping[str, Any], epsg: int) -> dict[str, Any]:
    """The item with proj:epsg beside proj:code (item and assets): stackstac 0.5 trusts
    proj:shape/proj:transform only with proj:epsg, and otherwise resamples to a grid of its own
    derived from the lon/lat bbox."""
    copy = dict(item)
    copy["properties"] = {"proj:epsg": epsg, **(item.get("properties") or {})}
    assets = {}
    for key, asset in (item.get("assets") or {}).items():
        code = asset.get("proj:code") if isinstance(asset, dict) else None
        if isinstance(code, str) and code.upper().startswith("EPSG:") and "proj:epsg" not in asset:
            asset = {**asset, "proj:epsg": int(code.split(":", 1)[1])}
        assets[key] = asset
    copy["assets"] = assets
    return copy


def _stacked(
    item: Mapping[str, Any],
    choice: AssetChoice,
    epsg: int,
    resolution: float | None,
    radiometry: Radiometry,
    geographic: bool,
    timeout_s: float,
) -> SceneRaster:
    item_id = str(item.get("id"))
    keys = choice.keys
    try:
        # epsg is passed explicitly: stackstac 0.5 reads proj:epsg only, not proj:code.
        stack = stackstac.stack(
            [_with_proj_epsg(item, epsg)],
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
        return _calibrate(np.array(values, dtype=np.float32), choice)

    transform = tuple(stack.attrs["transform"])[:6]
    return SceneRaster(
        item_id, epsg, transform, width, height, radiometry, geographic, read, choice
    )
