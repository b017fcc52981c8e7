"""pystac-client 0.9.1 against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import odc.stac
import pystac
import pytest
import rasterio
import stackstac
from affine import Affine
from pystac_client import Client
from rasterio.enums import Resampling
from rasterio.warp import reproject

from geomelt import SAMPLE_DIR
from geomelt.db import create_db_engine
from geomelt.engine import semantic_search
from geomelt.workers import ChipSettings, Pipeline, SourceSpec, ingest_once
from geomelt.workers.local import local_catalog

from .seeding import Seeded


def test_pystac_client_browses_searches_and_pages(live_server: str, seeded: Seeded) -> None:
    client = Client.open(live_server)
    assert {c.id for c in client.get_collections()} == set(seeded.collections)
    everything = client.search(limit=7, max_items=None)
    ids = [item.id for item in everything.items()]
    assert sorted(ids) == sorted(seeded.chips)
    filtered = client.search(
        collections=["sentinel-2-l2a"],
        bbox=[2.0, 48.5, 2.45, 48.95],
        datetime="2024-05-01T00:00:00Z/2024-05-31T23:59:59Z",
        filter={"op": ">=", "args": [{"property": "valid_fraction"}, 0.6]},
        limit=2,
    )
    found = list(filtered.items())
    assert found
    assert all(i.properties["valid_fraction"] >= 0.6 for i in found)
    assert {i.properties["geomelt:source_item"] for i in found} == {"S2A_T31UDQ_20240501"}
    text_filtered = client.search(filter="caption LIKE '%river%'", filter_lang="cql2-text")
    assert all("river" in i.properties["caption"] for i in text_filtered.items())


def test_semantic_search_helper_runs_q_and_similar_to(live_server: str, seeded: Seeded) -> None:
    ranked = list(
        semantic_search(live_server, q="a bridge over a river", limit=4, max_items=12).items()
    )
    assert len(ranked) == 12
    assert [i.properties["search:rank"] for i in ranked] == list(range(1, 13))
    by_example = list(
        semantic_search(
            live_server, similar_to=["S2A_T31UDQ_20240501_1_1"], method="GET", limit=3, max_items=6
        ).items()
    )
    assert len(by_example) == 6
    assert all("search:score" in i.properties for i in by_example)


# --- Loaders read a chip from its item alone (odc-stac, stackstac) ---------------------------

GEO_DIR = SAMPLE_DIR  # the shipped sample: no ../shared needed
# A 3-band uint8 RGB file (one multi-band `visual` asset) and an 11-band uint16 file whose red,
# green, blue become single-band COG assets (nodata 65535, smaller than one chip).
VISUAL_FILE = "usgs_hro_colorado_201404_15cm_residential.tif"
BANDS_FILE = "s2_barbellino_20170703_boa_10m_tiny.tif"


@dataclass(frozen=True)
class LocalApi:
    url: str
    folder: Path
    collection: str


@pytest.fixture
def local_api(database_url: str, tiny_model: Any, tmp_path: Path) -> Iterator[LocalApi]:
    """A local folder ingested as `geomelt demo` does, then served by `geomelt serve` alone:
    the ingest's file server and rustac are gone, as after a restart. (Its own process: GDAL
    holds the GIL while it opens a URL, so an in-process server would never answer it.)"""
    folder = tmp_path / "imagery"
    folder.mkdir()
    files = (VISUAL_FILE, BANDS_FILE)
    for name in files:
        (folder / name).symlink_to(GEO_DIR / name)
    entries = json.loads((GEO_DIR / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps([e for e in entries if e["file"] in files]))
    data_dir = tmp_path / "data"
    engine = create_db_engine(database_url)
    try:
        with local_catalog(folder, data_dir / "demo" / "imagery") as (url, catalog):
            spec = SourceSpec(
                name=catalog.collection, stac_api_url=url, collection=catalog.collection
            )
            # Both scenes are smaller than a chip: keep their partly covered chips.
            settings = ChipSettings(
                batch_size=16, caption_beams=1, caption_max_len=4, min_valid_fraction=0.01
            )
            pipeline = Pipeline(engine, tiny_model, settings)
            summary = ingest_once(engine, spec, pipeline, allow_private_hosts=True)
    finally:
        engine.dispose()
    assert summary.failures == []
    assert summary.scenes_done == 2
    with _geomelt_serve(database_url, data_dir) as api:
        yield LocalApi(api, folder, catalog.collection)


@contextlib.contextmanager
def _geomelt_serve(database_url: str, data_dir: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "GEOMELT_DATABASE_URL": database_url,
        "GEOMELT_DATA_DIR": str(data_dir),
        "GEOMELT_API_MODEL": "tiny-random",
    }
    command = [str(Path(sys.executable).parent / "geomelt"), "serve", "--port", str(port)]
    # A file, not a pipe: nobody reads the log while the server runs.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"geomelt serve did not start: {log.read()[-2000:]}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(30)


def _chip(api: LocalApi, source_item: str) -> pystac.Item:
    """The chip of `source_item` with the most valid pixels, found through the API."""
    found = Client.open(api.url).search(collections=[api.collection], max_items=None)
    chips = [i for i in found.items() if i.properties["geomelt:source_item"] == source_item]
    assert chips
    return max(chips, key=lambda i: i.properties["valid_fraction"])


def _source_window(path: Path, bands: list[int], item: pystac.Item) -> tuple[Any, Any]:
    """The source's pixels on the chip's grid (its proj:* alone): a window of the source when
    the chip is on the source's own grid, nearest-neighbour resampled otherwise."""
    height, width = item.properties["proj:shape"]
    target = np.zeros((len(bands), height, width), np.float64)
    with rasterio.open(path) as src:
        nodata = src.nodata
        reproject(
            rasterio.band(src, bands),
            target,
            dst_transform=Affine(*item.properties["proj:transform"][:6]),
            dst_crs=item.properties["proj:code"],
            dst_nodata=np.nan,
            resampling=Resampling.nearest,
        )
    return target, nodata


def test_odc_stac_reads_a_chip_from_its_item(local_api: LocalApi) -> None:
    item = _chip(local_api, "usgs_hro_colorado_201404_15cm_residential")
    # The ground grid of the scene's UTM zone (WGS 84), not the file's NAD83 zone.
    assert item.properties["proj:code"] == "EPSG:32613"
    asset = item.assets["visual"]
    assert asset.href.startswith(f"{local_api.url}/files/{local_api.collection}/")
    assert [b["common_name"] for b in asset.extra_fields["eo:bands"]] == ["red", "green", "blue"]
    assert asset.extra_fields["raster:bands"][0]["data_type"] == "uint8"

    loaded = odc.stac.load([item])
    visual = [name for name in loaded.data_vars if str(name).startswith("visual")]
    assert len(visual) == 3, list(loaded.data_vars)
    bands = np.stack([loaded[name].isel(time=0).to_numpy() for name in visual])
    expected, _ = _source_window(local_api.folder / VISUAL_FILE, [1, 2, 3], item)
    assert bands.shape == expected.shape
    # The chip is a ground-grid cell; the part of it beyond the scene has no source pixels.
    covered = np.isfinite(expected)
    assert covered.sum() > expected.size // 10
    assert np.array_equal(bands[covered], expected[covered])


def test_stackstac_reads_a_chip_from_its_item(local_api: LocalApi) -> None:
    item = _chip(local_api, "s2_barbellino_20170703_boa_10m_tiny")
    assert set(item.assets) >= {"red", "green", "blue"}

    # The item as the API serves it: pystac's projection migration drops proj:epsg (moved to
    # proj:code in projection v2), and stackstac 0.5 reads only proj:epsg.
    served = httpx.get(item.get_self_href() or "").json()
    assert served["properties"]["proj:epsg"] == int(served["properties"]["proj:code"][5:])
    stack = stackstac.stack([served], assets=["red", "green", "blue"])
    loaded = stack.isel(time=0).to_numpy()
    # Sentinel-2 bands B04, B03, B02 are bands 4, 3, 2 of the file; its nodata (65535) is NaN.
    expected, nodata = _source_window(local_api.folder / BANDS_FILE, [4, 3, 2], item)
    assert nodata == 65535
    valid = np.isfinite(expected)
    assert valid.any()
    assert np.array_equal(loaded[valid], expected[valid])
    assert np.isnan(loaded[~valid]).all()


def test_derived_from_and_assets_outlive_the_ingest(local_api: LocalApi) -> None:
    item = _chip(local_api, "usgs_hro_colorado_201404_15cm_residential")
    scene_href = item.get_single_link("derived_from")
    assert scene_href is not None
    scene = httpx.get(scene_href.href).json()
    assert scene["id"] == "usgs_hro_colorado_201404_15cm_residential"
    assert scene["properties"]["geomelt:read"]["assets"] == ["visual"]
    assert scene["properties"]["geomelt:read"]["proj:code"] == "EPSG:32613"
    visual = scene["assets"]["visual"]["href"]
    assert visual.startswith(f"{local_api.url}/files/")
    size = (local_api.folder / VISUAL_FILE).stat().st_size
    head = httpx.head(visual)
    assert (head.status_code, head.headers["content-length"]) == (200, str(size))
    beyond = httpx.get(visual, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    ranged = httpx.get(visual, headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206
    assert ranged.content in (b"II*\x00", b"MM\x00*")
    assert ranged.headers["content-range"].startswith("bytes 0-3/")
    assert (
        httpx.get(f"{local_api.url}/files/{local_api.collection}/..%2Fmanifest.json").status_code
        == 404
    )


# --- Next links every client follows ----------------------------------------------------------


def _all_ids(url: str, body: dict[str, Any]) -> list[str]:
    """Every id of a search, in one page (the reference the paged runs must equal)."""
    response = httpx.post(f"{url}/search", json={**body, "limit": 1000})
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_rustac_pages_a_filtered_sorted_search(live_server: str, seeded: Seeded) -> None:
    body = {
        "collections": ["sentinel-2-l2a", "landsat-c2-l2"],
        "bbox": [-180, -90, 180, 90],
        "filter": {"op": ">=", "args": [{"property": "valid_fraction"}, 0.0]},
        "filter-lang": "cql2-json",
        "sortby": [{"field": "properties.datetime", "direction": "desc"}],
    }
    expected = _all_ids(live_server, body)
    assert len(expected) > 6
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "rustac"),
            "search",
            live_server,
            "-",
            "--collections",
            "sentinel-2-l2a,landsat-c2-l2",
            "--bbox=-180,-90,180,90",
            "--filter",
            "valid_fraction >= 0",
            "--sortby=-datetime",
            "--limit",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    ids = [f["id"] for f in json.loads(completed.stdout)["features"]]
    assert ids == expected


def test_pystac_client_pages_a_ranked_filtered_search(live_server: str, seeded: Seeded) -> None:
    body = {
        "q": "a bridge over a river",
        "collections": ["sentinel-2-l2a", "landsat-c2-l2"],
        "filter": {"op": ">=", "args": [{"property": "valid_fraction"}, 0.0]},
    }
    expected = _all_ids(live_server, body)
    assert len(expected) > 6
    # A client that ignores `merge` sends the next link's body as it is: it must be complete.
    first = httpx.post(f"{live_server}/search", json={**body, "limit": 4}).json()
    pages = [f["id"] for f in first["features"]]
    link = next(k for k in first["links"] if k["rel"] == "next")
    while link is not None:
        page = httpx.post(link["href"], json=link["body"]).json()
        pages += [f["id"] for f in page["features"]]
        link = next((k for k in page["links"] if k["rel"] == "next"), None)
    assert pages == expected
    found = semantic_search(
        live_server,
        q=body["q"],
        collections=body["collections"],
        filter=body["filter"],
        limit=4,
        max_items=None,
    )
    assert [i.id for i in found.items()] == expected


def test_stackstac_reads_a_chip_of_a_multi_band_file(local_api: LocalApi) -> None:
    item = _chip(local_api, "usgs_hro_colorado_201404_15cm_residential")
    served = httpx.get(item.get_self_href() or "").json()
    # The visual asset's red, green, blue as single-band VRTs of the same file (/files).
    assert served["assets"]["red"]["href"].endswith(".tif.b1.vrt")
    stack = stackstac.stack([served], assets=["red", "green", "blue"])
    # Same origin and pixel size as the chip; stackstac's bounds snapping (float rounding of
    # 224 x 0.3 m) may add one row or column at the far edge.
    height, width = item.properties["proj:shape"]
    assert np.allclose(tuple(stack.attrs["transform"])[:6], item.properties["proj:transform"])
    loaded = stack.isel(time=0).to_numpy()[:, :height, :width]
    expected, _ = _source_window(local_api.folder / VISUAL_FILE, [1, 2, 3], item)
    covered = np.isfinite(expected)
    assert covered.sum() > expected.size // 10
    # The file is in another CRS (NAD83 UTM 13N) than the chip (WGS 84 UTM 13N): stackstac's
    # warper (approximate transformer, nearest of the 0.15 m source pixels per 0.3 m pixel)
    # picks neighbours of the ones rasterio.reproject picks, so equal in the large, not exact.
    difference = np.abs(loaded[covered] - expected[covered])
    correlation = np.corrcoef(loaded[covered], expected[covered])[0, 1]
    # Measured: median difference 5 (of 255), correlation 0.92; a misplaced read is far off.
    assert float(np.median(difference)) <= 12
    assert correlation > 0.85
