"""The filtered vector search planner: chip_cells counts, strategy choice, exact results."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Connection, Engine, delete, func, select, text

from geomelt.db import create_db_engine, unit_of_work
from geomelt.db.models import Chip, ChipCell, Scene, Source
from geomelt.db.queries import register_model
from geomelt.db.queries.ingest import ChipRecord, SceneRecord, upsert_chips, upsert_scene
from geomelt.db.queries.models import hnsw_index_name
from geomelt.db.queries.search import (
    VectorPlan,
    ef_search_floor,
    estimate_candidates,
    plan_vector_search,
    planned_neighbours,
    vector_neighbours,
)
from geomelt.db.queries.where import Filters, where_clauses

DIM = 16
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
# Scene origins (west, south): two in one 1° cell, one each in two others; 10 x 10 chips each.
SCENES = [(10.1, 45.1), (10.5, 45.5), (30.2, -5.8), (-70.4, 40.3)]
GRID = 10
CHIP_DEG = 0.02
THRESHOLD = 150  # one scene (100 chips) is below it, the whole table (400) above


def _scene_chips(
    scene_id: int, model_id: int, origin: tuple[float, float], day: int, rng: np.random.Generator
) -> list[ChipRecord]:
    centres = np.random.default_rng(7).normal(size=(6, DIM))
    chips = []
    for row in range(GRID):
        for col in range(GRID):
            west, south = origin[0] + col * CHIP_DEG, origin[1] + row * CHIP_DEG
            east, north = west + CHIP_DEG, south + CHIP_DEG
            embedding = centres[rng.integers(len(centres))] + 0.6 * rng.normal(size=DIM)
            chips.append(
                ChipRecord(
                    scene_id=scene_id,
                    model_id=model_id,
                    row=row,
                    col=col,
                    datetime=START + dt.timedelta(days=day),
                    footprint_lonlat=[(west, south), (east, south), (east, north), (west, north)],
                    caption="fields and trees",
                    embedding=embedding.astype(np.float32),
                    window_px=(col * 224, row * 224, 224, 224),
                    valid_fraction=1.0,
                )
            )
    return chips


@pytest.fixture
def seeded(database_url: str) -> Iterator[tuple[Engine, int]]:
    engine = create_db_engine(database_url)
    rng = np.random.default_rng(0)
    with unit_of_work(engine) as connection:
        source_id = connection.execute(
            Source.__table__.insert()
            .values(name="grid", stac_api_url="http://127.0.0.1:1/", collection="tiles")
            .returning(Source.id)
        ).scalar_one()
        model_id = register_model(
            connection, name="m", version="1", sha256="0" * 64, embedding_dim=DIM
        )
        for i, (west, south) in enumerate(SCENES):
            scene_id, _ = upsert_scene(
                connection,
                SceneRecord(
                    source_id=source_id,
                    collection="tiles",
                    item_id=f"scene-{i}",
                    item={"id": f"scene-{i}"},
                    datetime=START + dt.timedelta(days=30 * i),
                    item_version="1",
                    bbox_lonlat=(west, south, west + 0.2, south + 0.2),
                ),
            )
            upsert_chips(connection, _scene_chips(scene_id, model_id, (west, south), 30 * i, rng))
        connection.execute(text("ANALYZE chips"))
    try:
        yield engine, model_id
    finally:
        engine.dispose()


def _cells(connection: Connection, model_id: int) -> dict[tuple[int, int], int]:
    rows = connection.execute(
        select(ChipCell.cell_x, ChipCell.cell_y, ChipCell.chips).where(
            ChipCell.model_id == model_id
        )
    )
    return {(x, y): n for x, y, n in rows}


def test_chip_cells_follow_inserts_updates_and_deletes(seeded: tuple[Engine, int]) -> None:
    engine, model_id = seeded
    with unit_of_work(engine) as connection:
        assert _cells(connection, model_id) == {(10, 45): 200, (30, -6): 100, (-71, 40): 100}
        scene_id = connection.execute(
            select(Scene.id).where(Scene.item_id == "scene-2")
        ).scalar_one()
        # An upsert that moves one chip to another cell (its footprint changed).
        moved = _scene_chips(scene_id, model_id, (30.2, -5.8), 60, np.random.default_rng(1))[0]
        ring = [(31.5, -5.5), (31.52, -5.5), (31.52, -5.48), (31.5, -5.48)]
        moved = ChipRecord(**{**moved.__dict__, "footprint_lonlat": ring})
        upsert_chips(connection, [moved])
        assert _cells(connection, model_id)[(30, -6)] == 99
        assert _cells(connection, model_id)[(31, -6)] == 1
        connection.execute(delete(Chip).where(Chip.scene_id == scene_id))
        assert _cells(connection, model_id) == {(10, 45): 200, (-71, 40): 100}


def test_spatial_estimates_come_from_cells_and_temporal_from_explain(
    seeded: tuple[Engine, int],
) -> None:
    engine, model_id = seeded
    with unit_of_work(engine) as connection:
        one_cell, source = estimate_candidates(
            connection, Filters(model_id=model_id, bbox=(10.0, 45.0, 11.0, 46.0))
        )
        assert (one_cell, source) == (200, "cells")
        # Half the cell's area under the box: half its chips (Postgres would guess 0.5 %).
        half, _ = estimate_candidates(
            connection, Filters(model_id=model_id, bbox=(10.0, 45.0, 10.5, 46.0))
        )
        assert half == 100
        temporal, source = estimate_candidates(
            connection,
            Filters(model_id=model_id, datetime_start=START, datetime_end=START + dt.timedelta(1)),
        )
        assert source == "explain"
        assert 50 <= temporal <= 200  # 100 chips on day 0


def test_cql2_s_intersects_is_estimated_from_cells_like_a_bbox(
    seeded: tuple[Engine, int],
) -> None:
    engine, model_id = seeded
    box = {"bbox": [10.0, 45.0, 10.5, 46.0]}
    geometry = {"property": "geometry"}
    whole = {"op": ">=", "args": [{"property": "valid_fraction"}, 0.5]}  # every chip
    spatial = {"op": "s_intersects", "args": [geometry, box]}
    with unit_of_work(engine) as connection:
        for cql2 in (spatial, {"op": "and", "args": [whole, spatial]}):
            estimate, source = estimate_candidates(
                connection, Filters(model_id=model_id, cql2=cql2)
            )
            # Half a 200-chip cell, as for bbox=; Postgres alone would say 0.5 % of 400.
            assert (source, estimate) == ("cells", 100)
        # Under OR the box bounds nothing: the estimate stays with Postgres.
        either = {"op": "or", "args": [spatial, {"op": "=", "args": [{"property": "id"}, "x"]}]}
        assert (
            estimate_candidates(connection, Filters(model_id=model_id, cql2=either))[1] == "explain"
        )


def _exact(connection: Connection, filters: Filters, query: np.ndarray) -> list[int]:
    plan = VectorPlan("exact", 0)
    rows = vector_neighbours(
        connection, where_clauses(filters), query, dim=DIM, depth=10, plan=plan
    )
    return [chip for chip, _ in rows]


def _hnsw_scans(engine: Engine, model_id: int) -> int:
    with unit_of_work(engine) as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        return int(
            connection.execute(
                text(
                    "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes "
                    "WHERE indexrelname = :name"
                ),
                {"name": hnsw_index_name(model_id)},
            ).scalar_one()
        )


def test_planner_picks_exact_when_selective_and_hnsw_when_broad(
    seeded: tuple[Engine, int],
) -> None:
    engine, model_id = seeded
    rng = np.random.default_rng(3)
    selective = Filters(model_id=model_id, bbox=(30.0, -6.0, 31.0, -5.0))  # one scene
    broad = Filters(model_id=model_id)
    for filters, expected in ((selective, "exact"), (broad, "hnsw")):
        with unit_of_work(engine) as connection:
            plan = plan_vector_search(connection, filters, depth=10, exact_threshold=THRESHOLD)
            assert plan.strategy == expected
        for _ in range(5):
            query = rng.normal(size=DIM).astype(np.float32)
            query /= np.linalg.norm(query)
            scans_before = _hnsw_scans(engine, model_id)
            with unit_of_work(engine) as connection:
                found, ran = planned_neighbours(
                    connection, filters, query, dim=DIM, depth=10, exact_threshold=THRESHOLD
                )
                connection.execute(text("SELECT pg_stat_force_next_flush()"))
            with unit_of_work(engine) as connection:
                truth = _exact(connection, filters, query)
            assert ran.strategy == expected
            assert ran.fallback_from is None
            assert [chip for chip, _ in found] == truth  # recall 1.0, same order
            # The reported strategy is the one that ran: HNSW touched its index, exact did not.
            used_index = _hnsw_scans(engine, model_id) > scans_before
            assert used_index == (expected == "hnsw")


def test_ef_search_floor_grows_with_the_archive() -> None:
    # Measured at 100k and 1M chips (docs/SCALING.md): a fixed ef_search loses recall as the
    # graph grows, so the floor rises with sqrt(chips) up to the cap.
    assert ef_search_floor(400) == 100
    assert ef_search_floor(100_000) == 126
    assert ef_search_floor(1_000_000) == 400
    assert ef_search_floor(10**9) == 1000


def test_hnsw_settings_are_local_to_the_transaction(seeded: tuple[Engine, int]) -> None:
    engine, model_id = seeded
    query = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
    with unit_of_work(engine) as connection:
        _, plan = planned_neighbours(
            connection, Filters(model_id=model_id), query, dim=DIM, depth=10, exact_threshold=0
        )
        assert plan.strategy == "hnsw"
        inside = connection.execute(text("SHOW hnsw.iterative_scan")).scalar_one()
        ef_inside = connection.execute(text("SHOW hnsw.ef_search")).scalar_one()
        assert plan.info()["ef_search"] == int(ef_inside)
    with unit_of_work(engine) as connection:
        assert inside == "relaxed_order"
        assert connection.execute(text("SHOW hnsw.iterative_scan")).scalar_one() == "off"
        assert connection.execute(select(func.count()).select_from(Chip)).scalar_one() == 400
