"""Real test services for ingestion: STAC items for the shipped sample (geomelt/sample) and files
made from it (tests/sample_data.py), a rustac STAC API, a Range-capable static file server, and
a fault-injecting proxy in front of the STAC API.

Run as a script to build a catalog and serve it until Ctrl-C (for the demo and by hand):
`python -m tests.workers.fixtures OUT_DIR [FILE ...]`.

The static Range server and the rustac server are the product's (geomelt.workers.local, which
`geomelt demo PATH` uses); this module adds the manifest-based items and the fault injection.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.warp import transform_bounds

from geomelt.workers import local
from geomelt.workers import static_server as range_files
from geomelt.workers.rustac import rustac_server
from geomelt.workers.static_server import QuietHTTPServer, RangeHandler

from ..sample_data import (
    COARSE_FILE,
    RGBA_FILE,
    SAMPLE_DIR,
    made_entries,
    sample_manifest,
    write_coarse,
    write_rgba,
)

logger = logging.getLogger(__name__)

COLLECTION = "geomelt-geo"

# Band names meaning red, green, blue in the manifest (Sentinel-2 B04/B03/B02, Landsat 7 B3/B2/B1).
RGB_NAMES = {
    "red": ("red", "B04", "B3"),
    "green": ("green", "B03", "B2"),
    "blue": ("blue", "B02", "B1"),
}
# Files with an unknown acquisition date get this interval (STAC needs a datetime or a range).
UNKNOWN_INTERVAL = ("1990-01-01T00:00:00Z", "2025-12-31T23:59:59Z")

# Small files that cover every code path quickly: visual uint8 RGB, RGBA alpha, uint16 reflectance
# band assets, a scene smaller than one chip, a scene coarser than the model reads.
TEST_FILES = (
    "usgs_hro_colorado_201404_15cm_residential.tif",
    RGBA_FILE,
    "s2_barbellino_20170703_boa_10m_tiny.tif",
    "s2_demmin_20230603_10m_b04b03b02b08_4326.tif",
    COARSE_FILE,
)
_MAKERS = {RGBA_FILE: write_rgba, COARSE_FILE: write_coarse}


def manifest() -> list[dict[str, Any]]:
    """The sample's manifest entries and those of the files made from it."""
    return [*sample_manifest(), *made_entries().values()]


def source_path(name: str, data_dir: Path) -> Path:
    """A sample file, or a made one (written into `data_dir` on first use)."""
    make = _MAKERS.get(name)
    return make(data_dir) if make else SAMPLE_DIR / name


def _asset(href: str, path: Path, roles: list[str]) -> dict[str, Any]:
    with rasterio.open(path) as src:
        bands = [
            {
                "data_type": src.dtypes[i],
                **({"nodata": src.nodata} if src.nodata is not None else {}),
            }
            for i in range(src.count)
        ]
    return {
        "href": href,
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": roles,
        "raster:bands": bands,
    }


def build_item(entry: dict[str, Any], data_dir: Path, base_url: str, collection: str) -> dict:
    """One STAC item (projection extension) for a manifest entry; band COGs go to data_dir."""
    source = source_path(entry["file"], data_dir)
    stem = source.stem
    link = data_dir / source.name
    if not link.exists():
        # The sample file is served in place through a symlink, never copied.
        link.symlink_to(source)
    assets: dict[str, Any] = {}
    bands = entry["bands"]
    if entry["dtype"] == "uint8" and bands[:3] == ["red", "green", "blue"]:
        assets["visual"] = _asset(f"{base_url}/{source.name}", source, ["visual", "data"])
    elif bands == ["pan"]:
        assets["pan"] = _asset(f"{base_url}/{source.name}", source, ["data"])
    else:
        for key, names in RGB_NAMES.items():
            index = next((i for i, b in enumerate(bands) if b in names), None)
            if index is None:
                continue
            target = data_dir / f"{stem}_{key}.tif"
            if not target.exists():
                local.write_band_cog(source, index + 1, target)
            assets[key] = _asset(f"{base_url}/{target.name}", target, ["data"])
    with rasterio.open(source) as src:
        epsg = src.crs.to_epsg()
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        transform = list(src.transform)[:6]
        shape = [src.height, src.width]
        native_bbox = list(src.bounds)
    properties: dict[str, Any] = {
        "title": entry["title"],
        "proj:code": f"EPSG:{epsg}",
        "proj:epsg": epsg,
        "proj:shape": shape,
        "proj:transform": transform,
        "proj:bbox": native_bbox,
        "gsd": entry["gsd_m"],
    }
    start, end = entry.get("start_datetime"), entry.get("end_datetime")
    if entry["datetime"] and not end:
        properties["datetime"] = entry["datetime"]
    else:
        properties["datetime"] = None
        properties["start_datetime"] = start or UNKNOWN_INTERVAL[0]
        properties["end_datetime"] = end or UNKNOWN_INTERVAL[1]
    properties["updated"] = "2026-11-27T00:00:00Z"
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": stem,
        "collection": collection,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [west, south, east, north],
        "properties": properties,
        "links": [],
        "assets": assets,
    }


@dataclass
class Catalog:
    """A folder with items.json (a FeatureCollection) and the files its assets point at."""

    root: Path
    items: list[dict[str, Any]]
    collection: str = COLLECTION

    @property
    def items_path(self) -> Path:
        return self.root / "items.json"

    def write(self) -> Path:
        self.items_path.write_text(
            json.dumps({"type": "FeatureCollection", "features": self.items})
        )
        return self.items_path


def build_catalog(
    root: Path, base_url: str, files: tuple[str, ...] = TEST_FILES, collection: str = COLLECTION
) -> Catalog:
    """Items for `files` (sample or made ones) whose assets live under `base_url` (root/data)."""
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    by_name = {entry["file"]: entry for entry in manifest()}
    items = [build_item(by_name[name], data_dir, base_url, collection) for name in files]
    catalog = Catalog(root, items, collection)
    catalog.write()
    return catalog


def write_corrupt_files(data_dir: Path) -> dict[str, str]:
    """A truncated COG and a file of random bytes; returns name -> file name."""
    source = SAMPLE_DIR / "usgs_hro_colorado_201404_15cm_residential.tif"
    truncated = data_dir / "truncated.tif"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    garbage = data_dir / "garbage.tif"
    garbage.write_bytes(np.random.default_rng(7).integers(0, 256, 50_000, np.uint8).tobytes())
    return {"truncated": truncated.name, "garbage": garbage.name}


FAULT_COLLECTION = "geomelt-faults"


def fault_items(catalog: Catalog, base_url: str) -> dict[str, dict[str, Any]]:
    """Items that must fail with a clear reason, keyed by the fault (item ids are the keys too)."""
    names = write_corrupt_files(catalog.root / "data")
    good = next(i for i in catalog.items if i["id"].startswith("usgs_hro"))

    def variant(fault: str, **changes: Any) -> dict[str, Any]:
        item = json.loads(json.dumps(good))
        item["id"] = fault
        item["collection"] = FAULT_COLLECTION
        item.update(changes)
        return item

    def visual(href: str) -> dict[str, Any]:
        return {"visual": {**good["assets"]["visual"], "href": href}}

    return {
        "missing-asset": variant("missing-asset", assets=visual(f"{base_url}/nothing-here.tif")),
        "slow-asset": variant("slow-asset", assets=visual(f"{base_url}/slow/stalls.tif")),
        "truncated": variant("truncated", assets=visual(f"{base_url}/{names['truncated']}")),
        "garbage": variant("garbage", assets=visual(f"{base_url}/{names['garbage']}")),
        "no-rgb": variant(
            "no-rgb", assets={"nir": {**good["assets"]["visual"], "roles": ["data"]}}
        ),
        "broken-geometry": variant(
            "broken-geometry",
            geometry={"type": "Polygon", "coordinates": [[[-104.7, 38.9], [-104.6, 38.9]]]},
        ),
    }


# --- Static server with HTTP Range, rustac STAC API: the product's (geomelt.workers.local) ----


class _StallingHandler(RangeHandler):
    """The product's Range handler; paths under /slow/ stall to provoke client timeouts."""

    stall_s = 30.0

    def send_head(self) -> Any:
        if self.path.startswith("/slow/"):
            time.sleep(self.stall_s)
            self.send_error(504)
            return None
        return super().send_head()


@contextlib.contextmanager
def static_server(directory: Path, stall_s: float = 30.0) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1; yields the base URL."""
    handler = type("Handler", (_StallingHandler,), {"stall_s": stall_s})
    with range_files.static_server(directory, handler=handler) as url:
        yield url


# --- Fault-injecting proxy --------------------------------------------------------------------


@dataclass
class Faults:
    """What the proxy does to /search responses (1-based page numbers)."""

    fail_pages: set[int] = field(default_factory=set)
    # Append the first item of page 1 to this page again: "the same item twice across pages".
    repeat_first_item_on_page: int | None = None
    pages_seen: int = 0
    first_item: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def fault_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    """An HTTP proxy in front of the STAC API that rewrites links to itself and injects faults."""
    target = upstream.removeprefix("http://")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("proxy: " + format, *args)

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            connection = http.client.HTTPConnection(target, timeout=30)
            headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
            connection.request(method, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            status = response.status
            if self.path.startswith("/search"):
                status, payload = self._fault(status, payload)
            own = f"127.0.0.1:{self.server.server_address[1]}"
            payload = payload.replace(target.encode(), own.encode())
            self.send_response(status)
            self.send_header("Content-Type", response.getheader("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _fault(self, status: int, payload: bytes) -> tuple[int, bytes]:
            with faults.lock:
                faults.pages_seen += 1
                page = faults.pages_seen
            if page in faults.fail_pages:
                return 502, b'{"code":"BadGateway","description":"injected page failure"}'
            if status != 200:
                return status, payload
            document = json.loads(payload)
            features = document.get("features", [])
            if page == 1 and features:
                faults.first_item = features[0]
            if page == faults.repeat_first_item_on_page and faults.first_item is not None:
                features.append(faults.first_item)
            return status, json.dumps(document).encode()

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

    server = QuietHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str]) -> None:
    """Build a catalog of the given files (default: the whole sample) in argv[0] and serve it."""
    logging.basicConfig(level=logging.INFO)
    root = Path(argv[0])
    files = tuple(argv[1:]) or tuple(entry["file"] for entry in manifest())
    (root / "data").mkdir(parents=True, exist_ok=True)
    with static_server(root / "data") as base_url:
        catalog = build_catalog(root, base_url, files)
        with rustac_server(catalog.items_path) as stac_url:
            logger.info("STAC API %s, collection %s, files %s", stac_url, COLLECTION, base_url)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
