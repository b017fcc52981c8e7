"""The ingestion write path: idempotent scene and chip upserts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import Connection, func, select, text

from geomelt.db import Conflict, InvalidVector, create_db_engine, unit_of_work
from geomelt.db.models import Chip, Scene, Source
from geomelt.db.queries import register_model
from geomelt.db.queries.ingest import ChipRecord, SceneRecord, upsert_chips, upsert_scene

WHEN = dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC)


def _source(connection: Connection) -> int:
    return int(
        connection.execute(
            Source.__table__.insert()
            .values(name="vienna", stac_api_url="http://127.0.0.1:1/", collection="tiles")
            .returning(Source.id)
        ).scalar_one()
    )


def _scene(source_id: int, version: str = "v1") -> SceneRecord:
    return SceneRecord(
        source_id=source_id,
        collection="tiles",
        item_id="tile-1",
        item={"id": "tile-1", "type": "Feature"},
        datetime=WHEN,
        item_version=version,
        bbox_lonlat=(16.3, 48.2, 16.4, 48.3),
    )


def _chips(scene_id: int, model_id: int, seed: int = 0) -> list[ChipRecord]:
    rng = np.random.default_rng(seed)
    chips = []
    for row in range(2):
        for col in range(3):
            west, south = 16.3 + col * 0.01, 48.2 + row * 0.01
            ring = [
                (west, south),
                (west + 0.01, south),
                (west + 0.01, south + 0.01),
                (west, south + 0.01),
            ]
            chips.append(
                ChipRecord(
                    scene_id=scene_id,
                    model_id=model_id,
                    row=row,
                    col=col,
                    datetime=WHEN,
                    footprint_lonlat=ring,
                    caption=f"chip {row} {col} with trees",
                    embedding=rng.normal(size=8).astype(np.float32),
                    window_px=(col * 224, row * 224, 224, 224),
                    valid_fraction=1.0,
                )
            )
    return chips


def _snapshot(connection: Connection) -> list[tuple[object, ...]]:
    return connection.execute(
        text(
            "SELECT id, xmin::text, row, col, caption, embedding::text, footprint::text "
            "FROM chips ORDER BY id"
        )
    ).all()


def test_rerunning_a_batch_changes_nothing(database_url: str) -> None:
    engine = create_db_engine(database_url)
    with unit_of_work(engine) as connection:
        source_id = _source(connection)
        model_id = register_model(
            connection, name="t", version="1", sha256="0" * 64, embedding_dim=8
        )
        scene_id, changed = upsert_scene(connection, _scene(source_id))
        assert changed
        assert upsert_chips(connection, _chips(scene_id, model_id)) == 6
    with unit_of_work(engine) as connection:
        before = _snapshot(connection)
        again_id, changed_again = upsert_scene(connection, _scene(source_id))
        written = upsert_chips(connection, _chips(scene_id, model_id))
        after = _snapshot(connection)
        stored = connection.execute(
            select(func.count()).select_from(Chip).where(Chip.caption_tsv.match("trees"))
        ).scalar_one()
    engine.dispose()

    assert (again_id, changed_again) == (scene_id, False)
    assert written == 0
    assert after == before  # same ids, same row versions (xmin): nothing rewritten
    assert stored == 6
    assert before[0][6].startswith("((16.3,48.2)")


def test_changed_item_resets_scene_and_changed_chip_is_rewritten(database_url: str) -> None:
    engine = create_db_engine(database_url)
    with unit_of_work(engine) as connection:
        source_id = _source(connection)
        model_id = register_model(
            connection, name="t", version="1", sha256="0" * 64, embedding_dim=8
        )
        scene_id, _ = upsert_scene(connection, _scene(source_id))
        connection.execute(Scene.__table__.update().values(state="done", attempts=2))
        upsert_chips(connection, _chips(scene_id, model_id))
    with unit_of_work(engine) as connection:
        _, changed = upsert_scene(connection, _scene(source_id, version="v2"))
        state = connection.execute(select(Scene.state, Scene.attempts)).one()
        written = upsert_chips(connection, _chips(scene_id, model_id, seed=1))
        count = connection.execute(select(func.count()).select_from(Chip)).scalar_one()
    engine.dispose()

    assert changed
    assert tuple(state) == ("pending", 0)
    assert written == 6
    assert count == 6


@pytest.mark.parametrize("value", [0.0, np.nan, np.inf])
def test_zero_or_nan_embedding_is_a_bad_vector_not_a_conflict(
    database_url: str, value: float
) -> None:
    chip = _chips(1, 1)[0]
    bad = ChipRecord(**{**chip.__dict__, "embedding": np.full(8, value, dtype=np.float32)})
    engine = create_db_engine(database_url)
    with pytest.raises(InvalidVector, match="non-zero") as info, unit_of_work(engine) as c:
        upsert_chips(c, [bad])
    engine.dispose()
    assert not isinstance(info.value, Conflict)


def test_bulk_copy_stores_what_the_upsert_stores(database_url: str) -> None:
    from dataclasses import replace

    from geomelt.db.queries.ingest import copy_chips

    columns = (
        "row, col, datetime, footprint::text, bbox::text, geometry, caption, caption_tsv, "
        "embedding::text, window_x_px, window_y_px, window_width_px, window_height_px, "
        "thumbnail, valid_fraction, mean_brightness, cell_id"
    )
    engine = create_db_engine(database_url)
    with unit_of_work(engine) as connection:
        source_id = _source(connection)
        upserted, copied = (
            register_model(connection, name=name, version="1", sha256=c * 64, embedding_dim=8)
            for name, c in (("a", "0"), ("b", "1"))
        )
        scene_id, _ = upsert_scene(connection, _scene(source_id))
        upsert_chips(connection, _chips(scene_id, upserted))
        chips = [replace(c, cell_id=f"cell-{i}") for i, c in enumerate(_chips(scene_id, copied))]
        chips[0] = replace(chips[0], thumbnail=b"\x00jpeg", thumbnail_media_type="image/jpeg")
        ids = copy_chips(connection, chips[::-1])
        by_id = dict(connection.execute(text("SELECT id, (row, col)::text FROM chips")).all())

        def stored(model_id: int) -> list[tuple[object, ...]]:
            return connection.execute(
                text(f"SELECT {columns} FROM chips WHERE model_id = :m ORDER BY row, col"),  # noqa: S608
                {"m": model_id},
            ).all()

        expected = [
            (*row[:13], b"\x00jpeg" if i == 0 else None, row[14], row[15], f"cell-{i}")
            for i, row in enumerate(stored(upserted))
        ]
        assert stored(copied) == expected
    assert [by_id[i] for i in ids] == [f"({c.row},{c.col})" for c in chips[::-1]]
    with pytest.raises(Conflict), unit_of_work(engine) as connection:
        copy_chips(connection, chips)  # a bulk load is for new chips only
    engine.dispose()
