"""Migration 0005: chips of a scene's own grid are queued for re-chipping on the ground grid."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from geomelt.db import upgrade


def test_existing_chips_send_their_scenes_back_for_re_chipping(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0004")
    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sources (id, name, stac_api_url, collection) "
                "VALUES (1, 's', 'http://127.0.0.1:1/', 'c');"
                "INSERT INTO models (id, name, version, sha256, embedding_dim) "
                "VALUES (1, 'm', 'v', repeat('0', 64), 2);"
                "INSERT INTO scenes (id, source_id, collection, item_id, item, item_version, state)"
                " VALUES (10, 1, 'c', 'chipped', '{}', 'v1', 'done'),"
                " (11, 1, 'c', 'failed-before', '{}', 'v1', 'failed');"
                "INSERT INTO chips (scene_id, model_id, row, col, footprint, bbox, geometry, "
                "embedding, window_x_px, window_y_px, window_width_px, window_height_px, "
                "valid_fraction) VALUES (10, 1, 0, 0, '((0,0),(1,0),(1,1))', '(1,1),(0,0)', "
                "'{}', '[1,0]', 0, 0, 4, 4, 1.0)"
            )
        )
    upgrade(empty_database_url)
    with engine.connect() as connection:
        states = dict(connection.execute(text("SELECT item_id, state FROM scenes")).all())
        jobs = connection.execute(
            text("SELECT queue_name, task_name, lock, args FROM procrastinate_jobs")
        ).all()
        cells = connection.execute(text("SELECT cell_id FROM chips")).scalars().all()
    engine.dispose()
    # The chipped scene goes back to the queue; the old chip stays searchable until then.
    assert states == {"chipped": "pending", "failed-before": "failed"}
    assert jobs == [("ingest", "ingest_scene", "scene-10", {"scene_id": 10})]
    assert cells == [None]
