"""Polling and ingesting the real GeoTIFF items through rustac and the Range server."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from geomelt.db import unit_of_work
from geomelt.workers import (
    ChipError,
    Pipeline,
    SourceSpec,
    SourceUnavailable,
    add_source,
    defer_ingest_jobs,
    poll_source,
)

from .conftest import Services


def _source(engine: Engine, services: Services, collection: str, **options: object) -> int:
    spec = SourceSpec.from_options(
        name=f"src-{collection}",
        stac_api_url=services.stac_url,
        collection=collection,
        **options,  # type: ignore[arg-type]
    )
    with unit_of_work(engine) as connection:
        return add_source(connection, spec, allow_private_hosts=True)


def _scene_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT item_id, id FROM scenes")).all())


def _chip_rows(engine: Engine) -> list[tuple]:
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT scene_id, row, col, xmin::text, caption, embedding::text, "
                "geometry::text, md5(thumbnail) FROM chips ORDER BY 1, 2, 3"
            )
        ).all()


def test_poll_stores_scenes_and_jobs_in_one_go_and_repolling_changes_nothing(
    engine: Engine, services: Services
) -> None:
    source_id = _source(engine, services, services.collection)
    first = poll_source(engine, source_id, enqueue=defer_ingest_jobs, page_size=2)
    assert first.pages == 3
    assert first.new_or_changed == len(services.catalog.items) == 5
    with engine.connect() as connection:
        jobs = connection.execute(
            text("SELECT args->>'scene_id', lock FROM procrastinate_jobs ORDER BY id")
        ).all()
        watermark, error = connection.execute(
            text("SELECT watermark, last_error FROM sources")
        ).one()
    assert sorted(int(scene) for scene, _ in jobs) == sorted(_scene_ids(engine).values())
    assert all(lock == f"scene-{scene}" for scene, lock in jobs)
    assert watermark is not None
    assert error is None
    again = poll_source(engine, source_id, enqueue=defer_ingest_jobs, page_size=2)
    assert again.new_or_changed == 0
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar() == 5


def test_ingest_real_scenes_then_rerun_changes_nothing(
    engine: Engine, services: Services, pipeline: Pipeline
) -> None:
    source_id = _source(engine, services, services.collection, chip_size_px=64)
    poll_source(engine, source_id, enqueue=None)
    scenes = _scene_ids(engine)
    results = {item: pipeline.ingest_scene(scene) for item, scene in scenes.items()}
    # 240 x 420 m of Sentinel-2 fill less than half of any 640 m cell: nothing is indexed.
    assert results["s2_barbellino_20170703_boa_10m_tiny"].chips == 0
    assert results["s2_barbellino_20170703_boa_10m_tiny"].skipped > 0
    # 300 m is beyond the 0.3-30 m the model reads: done, no chips, the reason recorded.
    coarse = results["landsat7_olinda_brazil_300m_rgb"]
    assert (coarse.chips, coarse.skipped) == (0, 0)
    assert coarse.not_chipped is not None
    assert "GSD 30" in coarse.not_chipped
    assert results["vienna_ortho_2023_30cm_alpha_footprint_rgba"].skipped > 0  # alpha collar
    assert results["vienna_ortho_2023_30cm_alpha_footprint_rgba"].chips > 50
    assert results["usgs_hro_colorado_201404_15cm_residential"].chips > 0
    with engine.connect() as connection:
        states = connection.execute(
            text("SELECT state, attempts, chips_skipped FROM scenes ORDER BY id")
        ).all()
        footprints = connection.execute(
            text(
                "SELECT count(*) FROM chips c JOIN scenes s ON s.id = c.scene_id "
                "WHERE NOT (s.bbox && c.bbox)"
            )
        ).scalar()
        media = connection.execute(
            text("SELECT thumbnail_media_type, min(valid_fraction) >= 0.5 FROM chips GROUP BY 1")
        ).all()
        grids = dict(
            connection.execute(
                text(
                    "SELECT s.item_id, array_agg(DISTINCT regexp_replace(c.cell_id, "
                    "'_[0-9]+_[0-9]+$', '') || ' ' || c.window_width_px || 'x' || "
                    "c.window_height_px) FROM chips c JOIN scenes s ON s.id = c.scene_id "
                    "GROUP BY 1"
                )
            ).all()
        )
        mismatched = connection.execute(
            text(
                "SELECT count(*) FROM chips WHERE cell_id IS NULL "
                "OR cell_id NOT LIKE '%\\_' || row || '\\_' || col"
            )
        ).scalar()
    assert all(state == "done" and attempts == 1 for state, attempts, _ in states)
    assert sum(skipped for _, _, skipped in states) == sum(r.skipped for r in results.values())
    # Each chip is a whole cell of the scene's ground grid that overlaps the scene.
    assert footprints == 0
    assert mismatched == 0
    assert grids == {
        "usgs_hro_colorado_201404_15cm_residential": ["utm13n_0.3m_64px 64x64"],
        "vienna_ortho_2023_30cm_alpha_footprint_rgba": ["utm33n_0.3m_64px 64x64"],
        "s2_demmin_20230603_10m_b04b03b02b08_4326": ["utm33n_10m_64px 64x64"],
    }
    assert media == [("image/jpeg", True)]
    with engine.connect() as connection:
        edge = connection.execute(
            text("SELECT min(valid_fraction), max(valid_fraction) FROM chips")
        ).one()
    # Edge cells are nodata-padded and say so; inner cells are whole.
    assert 0.5 <= edge[0] < 0.9
    assert edge[1] == 1.0
    before = _chip_rows(engine)
    assert len(before) == sum(r.chips for r in results.values())
    # A re-run of a done scene's job is a no-op.
    assert all(pipeline.ingest_scene(scene).already_done for scene in scenes.values())
    # Forcing a full repeat rewrites no row: same xmin, same values.
    again = [
        scenes["usgs_hro_colorado_201404_15cm_residential"],
        scenes["s2_barbellino_20170703_boa_10m_tiny"],
    ]
    with unit_of_work(engine) as connection:
        connection.execute(
            text("UPDATE scenes SET state = 'pending' WHERE id = ANY(:ids)"), {"ids": again}
        )
    for scene in again:
        pipeline.ingest_scene(scene)
    assert _chip_rows(engine) == before


@pytest.mark.parametrize(
    ("fault", "error", "reason"),
    [
        ("missing-asset", SourceUnavailable, "could not be fetched"),
        ("slow-asset", SourceUnavailable, "could not be fetched"),
        ("truncated", ChipError, "corrupt or truncated"),
        ("garbage", ChipError, "corrupt or truncated"),
        ("no-rgb", ChipError, "no RGB, pan or false-colour assets found"),
        ("broken-geometry", ChipError, "broken ring"),
    ],
)
def test_bad_items_fail_with_a_reason(
    engine: Engine,
    services: Services,
    pipeline: Pipeline,
    fault: str,
    error: type[Exception],
    reason: str,
) -> None:
    source_id = _source(engine, services, services.fault_collection)
    poll_source(engine, source_id, enqueue=None)
    scene_id = _scene_ids(engine)[fault]
    with pytest.raises(error, match=reason):
        pipeline.ingest_scene(scene_id)
    with engine.connect() as connection:
        state, attempts, last_error = connection.execute(
            text("SELECT state, attempts, last_error FROM scenes WHERE id = :id"), {"id": scene_id}
        ).one()
        chips = connection.execute(text("SELECT count(*) FROM chips")).scalar()
    assert (state, attempts, chips) == ("failed", 1, 0)
    assert fault in last_error
    assert reason in last_error
