"""workers/local.py: STAC items for a folder of real GeoTIFFs, the Range server, and serving them
through rustac so that polling (bounded by max_items) reads them like any STAC API."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from pathlib import Path

from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension

from geomelt import SAMPLE_DIR
from geomelt.db import create_db_engine, unit_of_work
from geomelt.workers import SourceSpec, ensure_source, poll_source
from geomelt.workers.local import build_local_items, local_catalog
from geomelt.workers.static_server import static_server

from .conftest import link_files
from .test_cli_demo import _write_bad_files

SINCE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_items_of_the_sample_folder_use_its_manifest(tmp_path: Path) -> None:
    catalog = build_local_items(
        SAMPLE_DIR, tmp_path / "served", "http://files", collection="geo", updated=SINCE
    )
    # manifest.json and LICENSES.md are notes beside the imagery, not skipped files.
    assert catalog.skipped == []
    items = {item["id"]: item for item in catalog.items}
    assert len(items) == 19
    for item in items.values():
        assert ProjectionExtension.get_schema_uri() in item["stac_extensions"]
        assert RasterExtension.get_schema_uri() in item["stac_extensions"]
        assert item["properties"]["proj:code"] == f"EPSG:{item['properties']['proj:epsg']}"
        assert len(item["properties"]["proj:shape"]) == 2
        for asset in item["assets"].values():
            assert asset["href"].startswith("http://files/")
            assert (tmp_path / "served" / asset["href"].rsplit("/", 1)[1]).is_file()
            assert asset["raster:bands"][0]["data_type"] in ("uint8", "uint16")
    # Sentinel-2 L2A with 11 bands: B04, B03, B02 (4, 3, 2) become single-band COGs.
    barbellino = items["s2_barbellino_20170703_boa_10m_tiny"]["assets"]
    assert [barbellino[k]["href"].rsplit(".", 2)[1] for k in ("red", "green", "blue")] == [
        "band4",
        "band3",
        "band2",
    ]
    assert list(items["naip_nd_20200831_m_4709963_se_14_5m"]["assets"]) == ["visual"]
    assert list(items["spacenet4_atlanta_wv2_pan_50cm"]["assets"]) == ["pan"]
    assert items["naip_nd_20090818_m_4709963_se_14_5m_3857"]["properties"]["proj:epsg"] == 3857
    assert items["s2_tci_34SGA_20200318_tobruk_libya_100m"]["properties"]["datetime"].startswith(
        "2020-03-18"
    )
    # Titles come from the manifest, not the file name.
    palace = items["vienna_ortho_2023_30cm_schoenbrunn_palace"]["properties"]
    assert "Schönbrunn palace" in palace["title"]


def test_without_a_manifest_bands_dates_and_bad_files_come_from_the_files(tmp_path: Path) -> None:
    folder = link_files(
        tmp_path / "imagery",
        (
            "landsat7_olinda_brazil_etm_6band_28m.tif",  # descriptions "B1 blue", "B3 red", ...
            "s2_demmin_20230603_10m_b04b03b02b08_4326.tif",  # descriptions B4, B3, B2, B8
            "usgs_hro_colorado_201404_15cm_residential.tif",  # colour interpretation RGB
            "spacenet6_rotterdam_wv2_pan_50cm_residential.tif",  # no date anywhere
        ),
    )
    _write_bad_files(folder)
    catalog = build_local_items(
        folder, tmp_path / "served", "http://files", collection="c", updated=SINCE
    )
    reasons = {s.path.name: s.reason for s in catalog.skipped}
    assert sorted(reasons) == ["garbage.tif", "no_georef.tif", "photo.png"]
    assert all(reasons.values())
    assert reasons["photo.png"].startswith("a .png image without georeferencing")
    items = {item["id"]: item for item in catalog.items}
    olinda = items["landsat7_olinda_brazil_etm_6band_28m"]["assets"]
    assert [olinda[k]["href"].rsplit(".", 2)[1] for k in ("red", "green", "blue")] == [
        "band3",
        "band2",
        "band1",
    ]
    assert list(items["s2_demmin_20230603_10m_b04b03b02b08_4326"]["assets"]) == ["visual"]
    usgs = items["usgs_hro_colorado_201404_15cm_residential"]["properties"]
    assert usgs["datetime"].startswith("2014-04-01")
    rotterdam = items["spacenet6_rotterdam_wv2_pan_50cm_residential"]["properties"]
    assert rotterdam["datetime"] is None
    assert rotterdam["start_datetime"] < rotterdam["end_datetime"]
    # The truncated file's header is intact: it is listed, and fails later, at chipping.
    assert "truncated" in items


def _get_range(url: str, byte_range: str) -> tuple[int, str | None, bytes]:
    request = urllib.request.Request(url, headers={"Range": byte_range})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.headers["Content-Range"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Range"], b""


def test_range_server_answers_byte_ranges(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(bytes(range(256)) * 4)
    with static_server(tmp_path) as url:
        assert _get_range(f"{url}/f.bin", "bytes=10-19") == (
            206,
            "bytes 10-19/1024",
            bytes(range(10, 20)),
        )
        assert _get_range(f"{url}/f.bin", "bytes=-4")[2] == bytes(range(252, 256))
        assert _get_range(f"{url}/f.bin", "bytes=5000-")[:2] == (416, "bytes */1024")
        assert _get_range(f"{url}/missing.bin", "bytes=0-1")[0] == 404


def test_served_catalog_polls_like_a_stac_api_and_keeps_its_urls(
    database_url: str, tmp_path: Path
) -> None:
    folder = link_files(
        tmp_path / "imagery",
        ("s2_barbellino_20170703_boa_10m_tiny.tif", "s2_barbellino_20190723_boa_10m_tiny.tif"),
    )
    engine = create_db_engine(database_url)
    try:
        with local_catalog(folder, tmp_path / "work") as (url, catalog):
            first_items = json.dumps(catalog.items, sort_keys=True)
            spec = SourceSpec(name="local", stac_api_url=url, collection=catalog.collection)
            with unit_of_work(engine) as connection:
                source_id = ensure_source(connection, spec, allow_private_hosts=True)
            bounded = poll_source(engine, source_id, enqueue=None, max_items=1)
            everything = poll_source(engine, source_id, enqueue=None)
        # A second start reuses the file server's port: the items (and so the scenes) are
        # unchanged, which is what makes the next ingest a no-op.
        with local_catalog(folder, tmp_path / "work") as (_, again):
            assert json.dumps(again.items, sort_keys=True) == first_items
    finally:
        engine.dispose()
    assert bounded.items == 1
    assert everything.items == 2
    assert everything.new_or_changed == 1
