"""Migration 0006 moves an existing archive into spatial order, and re-clustering keeps it."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import numpy as np
from sqlalchemy import text

from geomelt.db import create_db_engine, downgrade, unit_of_work, upgrade
from geomelt.db.maintenance import order_chips_spatially
from geomelt.db.queries import ChipRecord, SceneRecord, register_model, upsert_chips, upsert_scene
from geomelt.db.sources import create_source

DIM = 8
# Two places far apart; chips arrive alternating between them (two scenes ingested at once).
PLACES = {"tromso": (18.9, 69.6), "recife": (-34.9, -8.1)}


def _write_interleaved(url: str, batch: int) -> None:
    rng = np.random.default_rng(0)
    engine = create_db_engine(url)
    try:
        with unit_of_work(engine) as connection:
            model_id = register_model(
                connection, name="m", version="1", sha256="a" * 64, embedding_dim=DIM
            )
            source = create_source(
                connection,
                {"name": f"s{batch}", "stac_api_url": "http://127.0.0.1:1/", "collection": "c"},
                allow_private_hosts=True,
            )
            scenes = {}
            for name, (lon, lat) in PLACES.items():
                scenes[name], _ = upsert_scene(
                    connection,
                    SceneRecord(
                        source_id=source["id"],
                        collection="c",
                        item_id=f"{name}-{batch}",
                        item={"id": f"{name}-{batch}"},
                        datetime=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                        item_version="1",
                        bbox_lonlat=(lon, lat, lon + 1, lat + 1),
                    ),
                )
            for index in range(60):
                name = list(PLACES)[index % 2]
                lon, lat = PLACES[name]
                west, south = lon + (index // 2 % 10) * 0.01, lat + (index // 20) * 0.01
                embedding = rng.standard_normal(DIM).astype(np.float32)
                upsert_chips(
                    connection,
                    [
                        ChipRecord(
                            scene_id=scenes[name],
                            model_id=model_id,
                            row=index // 20,
                            col=index // 2 % 10,
                            datetime=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                            footprint_lonlat=[
                                (west, south),
                                (west + 0.01, south),
                                (west + 0.01, south + 0.01),
                                (west, south + 0.01),
                            ],
                            caption=None,
                            embedding=embedding / np.linalg.norm(embedding),
                            window_px=(0, 0, 8, 8),
                            valid_fraction=1.0,
                        )
                    ],
                )
    finally:
        engine.dispose()


def _places_in_heap_order(url: str) -> list[str]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            rows: list[Any] = list(
                connection.execute(
                    text(
                        "SELECT split_part(s.item_id, '-', 1) FROM chips c "
                        "JOIN scenes s ON s.id = c.scene_id ORDER BY c.ctid"
                    )
                )
            )
        return [row[0] for row in rows]
    finally:
        engine.dispose()


def _runs(places: list[str]) -> int:
    return 1 + sum(1 for a, b in itertools.pairwise(places) if a != b)


def test_migration_keeps_the_archive_and_clustering_orders_it(
    empty_database_url: str,
) -> None:
    upgrade(empty_database_url, "0005")
    _write_interleaved(empty_database_url, 1)
    assert _runs(_places_in_heap_order(empty_database_url)) == 60  # arrival order: alternating

    # The migration adds the key and its index only: no table rewrite (see its docstring).
    upgrade(empty_database_url)
    after = _places_in_heap_order(empty_database_url)
    assert sorted(after) == sorted(["tromso", "recife"] * 30)  # every chip kept
    assert _runs(after) == 60

    # Chips written later land at the end; clustering on the key orders the whole heap.
    _write_interleaved(empty_database_url, 2)
    assert _runs(_places_in_heap_order(empty_database_url)) > 2
    engine = create_db_engine(empty_database_url)
    try:
        order_chips_spatially(engine)
    finally:
        engine.dispose()
    assert _runs(_places_in_heap_order(empty_database_url)) == 2

    downgrade(empty_database_url, "0005")
    assert len(_places_in_heap_order(empty_database_url)) == 120
