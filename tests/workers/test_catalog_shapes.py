"""Items shaped as five real catalogs publish them are ingested with no --assets; the choice,
calibration and refusals name what they did (workers/assets.py, workers/read.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from sqlalchemy import Engine, text

from geomelt.workers import ChipError, SourceSpec, ingest_once
from geomelt.workers.read import choose_assets, open_scene
from geomelt.workers.rustac import rustac_server
from geomelt.workers.static_server import static_server

from .catalog_shapes import (
    COLLECTION,
    EXPECTED,
    LANDSAT_OFFSET,
    LANDSAT_SCALE,
    S2_OFFSET,
    S2_SCALE,
    SHAPES,
)


@dataclass(frozen=True)
class Shapes:
    stac_url: str
    items: dict[str, dict[str, Any]]
    data_dir: Path


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shapes]:
    root = tmp_path_factory.mktemp("shapes")
    data_dir = root / "data"
    data_dir.mkdir()
    with static_server(data_dir) as files_url:
        items = {name: build(data_dir, files_url) for name, build in SHAPES.items()}
        path = root / "items.json"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": list(items.values())}))
        with rustac_server(path) as stac_url:
            yield Shapes(stac_url, items, data_dir)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_automatic_choice_reads_each_catalog_shape(shapes: Shapes, shape: str) -> None:
    keys, bands, kind = EXPECTED[shape]
    choice = choose_assets(shapes.items[shape], ())
    assert (choice.keys, choice.bands, choice.kind) == (keys, bands, kind)
    assert choice.reason


def test_every_shape_is_ingested_with_no_assets_and_the_scene_says_what_was_read(
    engine: Engine, pipeline: Any, shapes: Shapes
) -> None:
    spec = SourceSpec(
        name="shapes", stac_api_url=shapes.stac_url, collection=COLLECTION, chip_size_px=512
    )
    summary = ingest_once(engine, spec, pipeline, allow_private_hosts=True)
    assert summary.failures == []
    assert summary.scenes_done == len(SHAPES)
    with engine.connect() as connection:
        records = dict(
            connection.execute(
                text("SELECT item_id, item->'properties'->'geomelt:read' FROM scenes")
            ).all()
        )
    for shape, item in shapes.items.items():
        record = records[item["id"]]
        keys, bands, kind = EXPECTED[shape]
        assert (tuple(record["assets"]), tuple(record["bands"]), record["kind"]) == (
            keys,
            bands,
            kind,
        )
        # The grid the chips were cut on (a UTM zone's ground grid), for the chips' proj:*.
        assert record["proj:code"].startswith(("EPSG:326", "EPSG:327"))
        assert len(record["proj:transform"]) == 6
        assert record["reason"]


@pytest.mark.parametrize(
    ("shape", "scale", "offset"),
    [
        ("earth-search sentinel-2-l2a", S2_SCALE, S2_OFFSET),
        ("planetary-computer landsat-c2-l2", LANDSAT_SCALE, LANDSAT_OFFSET),
    ],
)
def test_scale_offset_and_nodata_of_raster_bands_are_applied(
    shapes: Shapes, shape: str, scale: float, offset: float
) -> None:
    item = shapes.items[shape]
    red = shapes.data_dir / item["assets"]["red"]["href"].rsplit("/", 1)[1]
    with rasterio.open(red) as src:
        raw = src.read(1, window=Window(0, 0, src.width, 2)).astype(np.float64)
    with open_scene(item, (), None) as raster:
        values = raster.read_rows(0, 2)[0]
    assert str(raster.radiometry) == "float"
    valid = raw != 0
    assert valid.any()
    assert np.allclose(values[valid], raw[valid] * scale + offset, atol=1e-6)
    assert np.isnan(values[~valid]).all()


def test_an_item_with_no_resolvable_assets_is_refused_in_one_line(shapes: Shapes) -> None:
    item = json.loads(json.dumps(shapes.items["maxar open data"]))
    del item["assets"]["visual"]
    item["assets"]["ms_analytic"]["eo:bands"] = [{"name": "BAND_X"}] * 8
    del item["assets"]["pan_analytic"]
    with pytest.raises(ChipError) as raised:
        choose_assets(item, ())
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("item '10300100CF4B1B00-visual': no RGB, pan or false-colour")
    assert "ms_analytic (image/tiff, data, bands" in message
    assert "data-mask" in message
    assert "--assets" in message


def test_a_stated_false_colour_is_chosen_and_named(shapes: Shapes) -> None:
    item = json.loads(json.dumps(shapes.items["planetary-computer naip"]))
    item["assets"]["image"]["eo:bands"] = [
        {"name": n, "common_name": n} for n in ("nir", "red", "green")
    ]
    choice = choose_assets(item, ())
    assert (choice.kind, choice.bands, choice.names) == (
        "false colour",
        (1, 2, 3),
        ("nir", "red", "green"),
    )
    assert "false colour" in choice.reason


@pytest.mark.parametrize(
    ("where", "value", "named"),
    [
        ("proj:shape", [10], "proj:shape [10]"),
        ("proj:transform", [1, 0, 0], "proj:transform [1, 0, 0]"),
        ("proj:code", 4326, "proj:code 4326"),
    ],
)
def test_malformed_projection_is_named(shapes: Shapes, where: str, value: Any, named: str) -> None:
    item = json.loads(json.dumps(shapes.items["maxar open data"]))
    item["properties"][where] = value
    with (
        pytest.raises(ChipError, match=r"item '10300100CF4B1B00-visual': item ") as raised,
        open_scene(item, (), None),
    ):
        pass
    assert named in str(raised.value)


def test_malformed_raster_bands_are_named(shapes: Shapes) -> None:
    item = json.loads(json.dumps(shapes.items["planetary-computer landsat-c2-l2"]))
    item["assets"]["red"]["raster:bands"] = [{"scale": "0.0000275"}]
    with pytest.raises(ChipError, match=r"asset 'red' band 1 scale is '0.0000275', not a number"):
        choose_assets(item, ())
    item["assets"]["red"]["raster:bands"] = {"scale": 1}
    with pytest.raises(ChipError, match=r"asset 'red' raster:bands is not a list of band objects"):
        choose_assets(item, ())
