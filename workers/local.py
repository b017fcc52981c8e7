"""A folder of GeoTIFFs as a real STAC API: items built with pystac (projection and raster
extensions), the files served by `static_server.py` (HTTP Range), the items by `rustac.py`.

`geomelt demo PATH` ingests a folder through this, so local files take exactly the path that
remote catalogs take (poll -> read over HTTP Range -> chip -> caption + embed -> store).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
import rasterio
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.warp import transform_bounds

from geomelt.db.parsing import loose_instant

from .rustac import rustac_server
from .static_server import static_server

__all__ = [
    "GEOTIFF_SUFFIXES",
    "SIDECAR_SUFFIXES",
    "LocalCatalog",
    "SkippedFile",
    "build_local_items",
    "collection_id_for",
    "local_catalog",
    "local_collections",
    "write_band_cog",
]

logger = logging.getLogger(__name__)

GEOTIFF_SUFFIXES = (".tif", ".tiff", ".gtif")
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
# Notes and metadata beside the imagery: not reported as skipped (every other file is).
SIDECAR_SUFFIXES = (".md", ".txt", ".json", ".xml", ".ovr", ".py")
# Files with no date in their tags, name or manifest get this interval (STAC needs one).
UNKNOWN_INTERVAL = (
    dt.datetime(1990, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2025, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
)
# Band names meaning red, green, blue: words first, then Sentinel-2 band codes (B04 red, ...).
_COLOUR_WORDS = {"red": "red", "green": "green", "blue": "blue"}
_S2_CODES = {"b04": "red", "b4": "red", "b03": "green", "b3": "green", "b02": "blue", "b2": "blue"}
_DATE_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")
_MONTH_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})-?(0[1-9]|1[0-2])(?!\d)")


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


@dataclass
class LocalCatalog:
    """Items of a folder; `skipped` lists the files that are not usable, with the reason."""

    collection: str
    items: list[dict[str, Any]]
    skipped: list[SkippedFile] = field(default_factory=list)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps({"type": "FeatureCollection", "features": self.items}))
        return path


def collection_id_for(folder: Path) -> str:
    """'local-<folder name>', reduced to the characters STAC ids and source names allow."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip("-.") or "files"
    return f"local-{name}"[:64]


def _manifest(folder: Path) -> dict[str, dict[str, Any]]:
    # ../shared/data/geo style: a list of {"file", "bands", "datetime", ...}; optional.
    path = folder / "manifest.json"
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("%s: ignored (%s)", path, exc)
        return {}
    if not isinstance(entries, list):
        return {}
    return {e["file"]: e for e in entries if isinstance(e, dict) and isinstance(e.get("file"), str)}


def _rgb_indexes(dataset: Any, names: Sequence[str] | None) -> tuple[int, ...]:
    """1-based band indexes for red, green, blue, or (band,) for grey."""
    if dataset.count < 3:
        return (1,)
    labels = [str(n).lower() for n in names] if names else []
    if not labels:
        labels = [str(d or "").lower() for d in dataset.descriptions]
    found: dict[str, int] = {}
    for table in (_COLOUR_WORDS, _S2_CODES):
        for index, label in enumerate(labels, start=1):
            for word in re.split(r"[^a-z0-9]+", label):
                colour = table.get(word)
                if colour and colour not in found:
                    found[colour] = index
        if len(found) == 3:
            return found["red"], found["green"], found["blue"]
        found = {}
    interp = {c: i for i, c in enumerate(dataset.colorinterp, start=1)}
    if all(c in interp for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        return interp[ColorInterp.red], interp[ColorInterp.green], interp[ColorInterp.blue]
    # Unlabelled multi-band files (NAIP and most orthophotos) store red, green, blue first.
    return 1, 2, 3


def _acquired(
    path: Path, tags: dict[str, str], entry: dict[str, Any]
) -> tuple[dt.datetime | None, dt.datetime, dt.datetime] | tuple[dt.datetime, None, None]:
    """(datetime, None, None) when known, else (None, start, end)."""
    start = loose_instant(entry.get("start_datetime"))
    end = loose_instant(entry.get("end_datetime"))
    instant = loose_instant(entry.get("datetime"))
    if instant and not end:
        return instant, None, None
    if start or end:
        return None, start or UNKNOWN_INTERVAL[0], end or UNKNOWN_INTERVAL[1]
    stamp = tags.get("TIFFTAG_DATETIME", "")
    with contextlib.suppress(ValueError):
        return dt.datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.UTC), None, None
    match = _DATE_IN_NAME.search(path.stem)
    if match:
        year, month, day = (int(g) for g in match.groups())
        with contextlib.suppress(ValueError):
            return dt.datetime(year, month, day, tzinfo=dt.UTC), None, None
    match = _MONTH_IN_NAME.search(path.stem)
    if match:
        year, month = (int(g) for g in match.groups())
        return dt.datetime(year, month, 1, tzinfo=dt.UTC), None, None
    return None, *UNKNOWN_INTERVAL


def write_band_cog(source: Path, band_index: int, target: Path) -> None:
    """Band `band_index` (1-based) of `source` as a single-band COG: STAC band assets."""
    with rasterio.open(source) as src:
        profile = src.profile.copy()
        data = src.read(band_index)
    profile.update(driver="COG", count=1, compress="deflate", blocksize=256)
    for key in ("blockxsize", "blockysize", "tiled", "interleave", "photometric"):
        profile.pop(key, None)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data, 1)


def _raster_bands(path: Path) -> list[RasterBand]:
    with rasterio.open(path) as src:
        return [
            RasterBand.create(data_type=DataType(src.dtypes[i]), nodata=src.nodata)
            for i in range(src.count)
        ]


def _add_asset(item: pystac.Item, key: str, href: str, path: Path, roles: list[str]) -> None:
    asset = pystac.Asset(href=href, media_type=COG_MEDIA_TYPE, roles=roles)
    item.add_asset(key, asset)
    RasterExtension.ext(asset, add_if_missing=True).bands = _raster_bands(path)


def _item_for(
    path: Path, served: Path, base_url: str, collection: str, entry: dict[str, Any], updated: str
) -> pystac.Item:
    """One item; raises ValueError or RasterioError for files that cannot be used."""
    with rasterio.open(path) as src:
        if src.crs is None or src.transform.is_identity:
            raise ValueError("not georeferenced (no CRS or geotransform); georeference it first")
        epsg = src.crs.to_epsg()
        if epsg is None:
            raise ValueError(f"CRS {src.crs.to_string()[:60]} has no EPSG code")
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        indexes = _rgb_indexes(src, entry.get("bands"))
        shape = [src.height, src.width]
        transform = list(src.transform)[:6]
        native_bbox = list(src.bounds)
        tags = src.tags()
    instant, start, end = _acquired(path, tags, entry)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    item = pystac.Item(
        id=path.stem,
        geometry={"type": "Polygon", "coordinates": [ring]},
        bbox=[west, south, east, north],
        datetime=instant,
        start_datetime=start,
        end_datetime=end,
        properties={"title": entry.get("title") or path.name, "updated": updated},
        collection=collection,
    )
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    projection.code = f"EPSG:{epsg}"
    projection.shape = shape
    projection.transform = transform
    projection.bbox = native_bbox
    # stackstac 0.5 reads proj:epsg only (not proj:code).
    item.properties["proj:epsg"] = epsg
    RasterExtension.add_to(item)
    link = served / path.name
    if not link.exists():
        link.symlink_to(path.resolve())  # served in place, never copied
    if indexes == (1,):
        _add_asset(item, "pan", f"{base_url}/{path.name}", path, ["data"])
    elif indexes == (1, 2, 3):
        _add_asset(item, "visual", f"{base_url}/{path.name}", path, ["visual", "data"])
    else:
        for key, index in zip(("red", "green", "blue"), indexes, strict=True):
            target = served / f"{path.stem}.band{index}.tif"
            if not target.exists() or target.stat().st_mtime < path.stat().st_mtime:
                write_band_cog(path, index, target)
            _add_asset(item, key, f"{base_url}/{target.name}", target, ["data"])
    return item


def build_local_items(
    folder: Path, served: Path, base_url: str, *, collection: str, updated: dt.datetime
) -> LocalCatalog:
    """STAC items for the GeoTIFFs in `folder` (not recursive), assets under `base_url`.

    `served` is the folder the static server serves: it gets a symlink per file and, for files
    whose red, green, blue are not bands 1, 2, 3, single-band COGs of those bands. An item's
    `updated` is the later of its file's mtime and `updated` (when the asset URLs last changed),
    so a changed file or a moved server re-ingests, and an unchanged one is a no-op.
    """
    served.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(folder)
    catalog = LocalCatalog(collection, [])
    paths = sorted(p for p in folder.iterdir() if p.is_file())
    for path in paths:
        if path.suffix.lower() not in GEOTIFF_SUFFIXES:
            if not path.name.startswith(".") and path.suffix.lower() not in SIDECAR_SUFFIXES:
                catalog.skipped.append(SkippedFile(path, _why_not_geotiff(path)))
            continue
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
        stamp = max(mtime, updated).isoformat().replace("+00:00", "Z")
        try:
            item = _item_for(path, served, base_url, collection, manifest.get(path.name, {}), stamp)
        except (RasterioError, ValueError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
            catalog.skipped.append(SkippedFile(path, reason))
            continue
        catalog.items.append(item.to_dict(include_self_link=False, transform_hrefs=False))
    return catalog


def _why_not_geotiff(path: Path) -> str:
    """Why a file without a GeoTIFF suffix is not ingested, and what to do about it."""
    kind = path.suffix.lower() or "no suffix"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                georeferenced = src.crs is not None and not src.transform.is_identity
    except (RasterioError, OSError):
        return (
            f"not a GeoTIFF ({kind}) nor an image GDAL reads; "
            f"use {', '.join(GEOTIFF_SUFFIXES)} files"
        )
    if not georeferenced:
        return (
            f"a {kind} image without georeferencing (no CRS or geotransform); georeference it "
            "and save it as a GeoTIFF, e.g. gdal_translate -of COG -a_srs EPSG:... -a_ullr "
            "ulx uly lrx lry IN OUT.tif"
        )
    return f"a georeferenced {kind} image; convert it: gdal_translate -of COG IN OUT.tif"


def local_collections(work_root: Path) -> dict[str, Path]:
    """Collection id -> served folder, for every local folder served under `work_root`.

    `work_root` holds one work folder per local folder (`local_catalog`'s `work_dir`); the API
    serves each collection's files from its `files/` folder, so items' asset links outlive the
    ingest's temporary file server.
    """
    found: dict[str, Path] = {}
    for state_path in sorted(work_root.glob("*/static.json")):
        try:
            state = json.loads(state_path.read_text())
            collection = state.get("collection")
            if not isinstance(collection, str):
                # Work folders written before the state named its collection: the items say.
                items = json.loads((state_path.parent / "items.json").read_text())["features"]
                collection = items[0]["collection"]
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            logger.warning("%s: not a local catalog's state; its files are not served", state_path)
            continue
        if isinstance(collection, str) and (state_path.parent / "files").is_dir():
            found[collection] = state_path.parent / "files"
    return found


@contextlib.contextmanager
def local_catalog(
    folder: Path, work_dir: Path, *, collection: str | None = None
) -> Iterator[tuple[str, LocalCatalog]]:
    """Serve `folder`'s GeoTIFFs as a STAC API; yields (API URL, catalog).

    `work_dir` keeps the served symlinks, band COGs, items.json and the static server's port
    (reused on the next start, so asset URLs and thus items stay unchanged).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    state_path = work_dir / "static.json"
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        state = json.loads(state_path.read_text())
    served = work_dir / "files"
    served.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            base_url = stack.enter_context(static_server(served, port=int(state.get("port", 0))))
        except OSError:
            base_url = stack.enter_context(static_server(served))
        port = int(base_url.rsplit(":", 1)[1])
        collection = collection or collection_id_for(folder)
        if state.get("port") != port or "since" not in state or "collection" not in state:
            since = state.get("since") if state.get("port") == port else None
            state = {
                "port": port,
                "since": since or dt.datetime.now(dt.UTC).isoformat(),
                # The API serves `files/` for this collection (local_collections).
                "collection": collection,
            }
            state_path.write_text(json.dumps(state))
        catalog = build_local_items(
            folder,
            served,
            base_url,
            collection=collection,
            updated=dt.datetime.fromisoformat(state["since"]),
        )
        if not catalog.items:
            yield "", catalog
            return
        url = stack.enter_context(rustac_server(catalog.write(work_dir / "items.json")))
        yield url, catalog
