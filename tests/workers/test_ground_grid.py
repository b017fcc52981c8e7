"""The ground grid through the real ingestion path: acquisitions of one place in two CRSs share
cells, and a scene chipped before the grid is re-chipped onto it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

from geomelt import SAMPLE_DIR
from geomelt.db import unit_of_work
from geomelt.db.queries import ChipRecord, upsert_chips
from geomelt.workers import Pipeline, SourceSpec, ingest_once
from geomelt.workers.local import local_catalog

NAIP = (
    "naip_nd_20090818_m_4709963_se_14_5m_3857.tif",  # EPSG:3857
    "naip_nd_20200831_m_4709963_se_14_5m.tif",  # EPSG:26914
)


def _cells(engine: Engine) -> dict[str, set[str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT s.item_id, c.cell_id FROM chips c JOIN scenes s ON s.id = c.scene_id "
                "WHERE c.cell_id IS NOT NULL"
            )
        ).all()
    cells: dict[str, set[str]] = {}
    for item_id, cell_id in rows:
        cells.setdefault(item_id, set()).add(cell_id)
    return cells


def test_one_place_in_two_crss_gets_the_same_cells_and_old_chips_are_replaced(
    engine: Engine, pipeline: Pipeline, tmp_path: Path
) -> None:
    folder = tmp_path / "naip"
    folder.mkdir()
    for name in NAIP:
        (folder / name).symlink_to(SAMPLE_DIR / name)
    with local_catalog(folder, tmp_path / "work") as (stac_url, catalog):
        spec = SourceSpec(
            name=catalog.collection,
            stac_api_url=stac_url,
            collection=catalog.collection,
            chip_size_px=112,
        )
        summary = ingest_once(engine, spec, pipeline, allow_private_hosts=True)
        assert summary.failures == []
        cells = _cells(engine)
        assert set(cells) == {Path(name).stem for name in NAIP}
        first, second = (cells[Path(name).stem] for name in NAIP)
        # The same ground, one in Web Mercator and one in NAD83 / UTM 14N: the same cells
        # (at most a rim cell differs, where the two crops' edges fall either side of 50 %).
        assert len(first & second) >= 0.8 * max(len(first), len(second))
        assert all(cell.startswith("utm14n_5m_112px_") for cell in first | second)

        # A chip of the scene's own grid from before the ground grid (NULL cell): re-chipping
        # the scene replaces it.
        with unit_of_work(engine) as connection:
            scene_id, model_id = connection.execute(
                text("SELECT scene_id, model_id FROM chips LIMIT 1")
            ).one()
            ring = [(-97.0, 47.0), (-96.9, 47.0), (-96.9, 47.1), (-97.0, 47.1)]
            upsert_chips(
                connection,
                [
                    ChipRecord(
                        scene_id=scene_id,
                        model_id=model_id,
                        row=0,
                        col=0,
                        datetime=None,
                        footprint_lonlat=ring,
                        caption="legacy chip",
                        embedding=np.ones(pipeline.model.embedding_dim, np.float32),
                        window_px=(0, 0, 112, 112),
                        valid_fraction=1.0,
                    )
                ],
            )
            connection.execute(
                text("UPDATE scenes SET state = 'pending' WHERE id = :id"), {"id": scene_id}
            )
        again = ingest_once(engine, spec, pipeline, allow_private_hosts=True)
        assert again.scenes_done == 1
    with engine.connect() as connection:
        legacy = connection.execute(
            text("SELECT count(*) FROM chips WHERE cell_id IS NULL")
        ).scalar_one()
    assert legacy == 0
    assert _cells(engine) == cells
