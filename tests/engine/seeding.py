"""Seed a database with chips through the write path (register_model, upsert_scene/chips)."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import Engine

from geomelt.db import create_db_engine, unit_of_work
from geomelt.db.queries import ChipRecord, SceneRecord, upsert_chips, upsert_scene
from geomelt.db.queries.filters import chip_item_id
from geomelt.db.sources import create_source
from geomelt.workers.pipeline import register_geomelt

CAPTIONS = [
    "boats moored in a small harbour",
    "a river crossing green farmland",
    "dense urban area with roads",
    "forest next to a blue lake",
    "an airport runway with planes",
    "fields of wheat and a farm",
    "a bridge over a wide river",
    "sandy beach and the sea",
]
GRID_ROWS, GRID_COLS = 3, 4
CHIP_DEG = 0.1


@dataclass(frozen=True)
class Seeded:
    model_id: int
    # item id -> (collection, embedding, caption, datetime, bbox w,s,e,n)
    chips: dict[str, tuple[str, np.ndarray[Any, Any], str, dt.datetime, tuple[float, ...]]]

    @property
    def collections(self) -> list[str]:
        return sorted({c for c, *_ in self.chips.values()})


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (value, 100, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


SCENES = [
    # collection, item id, datetime, lon0, lat0, cloud cover
    (
        "sentinel-2-l2a",
        "S2A_T31UDQ_20240501",
        dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC),
        2.0,
        48.5,
        5.0,
    ),
    (
        "sentinel-2-l2a",
        "S2B_T31UDQ_20240611",
        dt.datetime(2024, 6, 11, 10, 40, tzinfo=dt.UTC),
        2.2,
        48.6,
        35.0,
    ),
    (
        "landsat-c2-l2",
        "LC09_199026_20230815",
        dt.datetime(2023, 8, 15, 10, 50, tzinfo=dt.UTC),
        -1.5,
        47.0,
        12.0,
    ),
    (
        "landsat-c2-l2",
        "LC08_199026_20220301",
        dt.datetime(2022, 3, 1, 10, 55, tzinfo=dt.UTC),
        179.8,
        -16.5,
        60.0,
    ),
]


def seed(engine: Engine, model: Any, *, seed_value: int = 0) -> Seeded:
    rng = np.random.default_rng(seed_value)
    chips: dict[str, Any] = {}
    with unit_of_work(engine) as connection:
        model_id = register_geomelt(connection, model)
        source = create_source(
            connection,
            {"name": "test-source", "stac_api_url": "http://127.0.0.1:1/", "collection": "x"},
            allow_private_hosts=True,  # never polled: chips are written directly
        )
        for index, (collection, item_id, when, lon0, lat0, cloud) in enumerate(SCENES):
            item = {
                "type": "Feature",
                "id": item_id,
                "properties": {
                    "datetime": when.isoformat(),
                    "eo:cloud_cover": cloud,
                    "platform": item_id[:4].lower(),
                },
                "links": [{"rel": "self", "href": f"http://127.0.0.1:1/items/{item_id}"}],
                "assets": {
                    "visual": {"href": f"http://127.0.0.1:1/{item_id}.tif", "roles": ["visual"]}
                },
            }
            scene_id, _ = upsert_scene(
                connection,
                SceneRecord(
                    source_id=source["id"],
                    collection=collection,
                    item_id=item_id,
                    item=item,
                    datetime=when,
                    item_version="1",
                    bbox_lonlat=(
                        lon0,
                        lat0,
                        lon0 + GRID_COLS * CHIP_DEG,
                        lat0 + GRID_ROWS * CHIP_DEG,
                    ),
                ),
            )
            records = []
            for row in range(GRID_ROWS):
                for col in range(GRID_COLS):
                    west = min(lon0 + col * CHIP_DEG, 179.99)
                    south = lat0 + row * CHIP_DEG
                    east = min(west + CHIP_DEG, 180.0)
                    north = south + CHIP_DEG
                    ring = [(west, south), (east, south), (east, north), (west, north)]
                    embedding = rng.standard_normal(model.embedding_dim).astype(np.float32)
                    embedding /= np.linalg.norm(embedding)
                    caption = CAPTIONS[(index * 5 + row * GRID_COLS + col) % len(CAPTIONS)]
                    records.append(
                        ChipRecord(
                            scene_id=scene_id,
                            model_id=model_id,
                            row=row,
                            col=col,
                            datetime=when,
                            footprint_lonlat=ring,
                            caption=caption,
                            embedding=embedding,
                            window_px=(col * 224, row * 224, 224, 224),
                            valid_fraction=0.5 + 0.04 * (row * GRID_COLS + col),
                            thumbnail=_png(row * 40 + col) if (row + col) % 2 == 0 else None,
                            thumbnail_media_type="image/png" if (row + col) % 2 == 0 else None,
                        )
                    )
                    chips[chip_item_id(item_id, row, col)] = (
                        collection,
                        embedding,
                        caption,
                        when,
                        (west, south, east, north),
                    )
            upsert_chips(connection, records)
    return Seeded(model_id, chips)


def seed_url(database_url: str, model: Any) -> Seeded:
    engine = create_db_engine(database_url)
    try:
        return seed(engine, model)
    finally:
        engine.dispose()
