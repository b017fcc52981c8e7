"""The job queue: real procrastinate workers against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from geomelt.db import unit_of_work
from geomelt.workers import (
    ChipSettings,
    Pipeline,
    RetryPolicy,
    SourceSpec,
    add_source,
    create_app,
    defer_ingest_jobs,
    defer_poll,
    poll_source,
)

from .conftest import FAST, Services


def _source(engine: Engine, services: Services, name: str, collection: str, **extra: Any) -> int:
    spec = SourceSpec(name=name, stac_api_url=services.stac_url, collection=collection, **extra)
    with unit_of_work(engine) as connection:
        return add_source(connection, spec, allow_private_hosts=True)


def test_worker_polls_ingests_retries_and_survives_bad_items(
    engine: Engine, database_url: str, services: Services, tiny_model: Any
) -> None:
    good = _source(
        engine,
        services,
        "good",
        services.collection,
        search={"ids": ["usgs_hro_colorado_201404_15cm_residential"]},
    )
    bad = _source(
        engine,
        services,
        "bad",
        services.fault_collection,
        search={"ids": ["missing-asset", "no-rgb", "garbage"]},
    )
    app = create_app(
        database_url.replace("+psycopg", ""),
        engine,
        lambda: Pipeline(engine, tiny_model, FAST),
        retry=RetryPolicy(max_attempts=3, exponential_wait_s=0),
    )
    with app.open():
        assert defer_poll(app, good)
        assert defer_poll(app, bad)
        assert not defer_poll(app, bad)  # already queued: one poll per source at a time
        app.run_worker(queues=["poll", "ingest"], wait=False, install_signal_handlers=False)
    with engine.connect() as connection:
        scenes = dict(
            (item, (state, attempts, error))
            for item, state, attempts, error in connection.execute(
                text("SELECT item_id, state, attempts, last_error FROM scenes")
            )
        )
        jobs = connection.execute(
            text("SELECT task_name, status, attempts FROM procrastinate_jobs ORDER BY id")
        ).all()
    assert scenes["usgs_hro_colorado_201404_15cm_residential"][:2] == ("done", 1)
    # Network failures are retried up to max_attempts; bad data fails once.
    assert scenes["missing-asset"][:2] == ("failed", 3)
    assert "could not be fetched" in scenes["missing-asset"][2]
    assert scenes["no-rgb"][:2] == ("failed", 1)
    assert scenes["garbage"][:2] == ("failed", 1)
    statuses = sorted((task, status) for task, status, _ in jobs)
    assert statuses.count(("ingest_scene", "succeeded")) == 1
    assert statuses.count(("ingest_scene", "failed")) == 3
    assert statuses.count(("poll_source", "succeeded")) == 2


def _worker(database_url: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GEOMELT_DATABASE_URL": database_url}
    geomelt = str(Path(sys.executable).parent / "geomelt")
    command = [
        geomelt,
        "worker",
        "--model",
        "tiny-random",  # the chips are compared with the tiny_model fixture's
        "--queues",
        "ingest",
        "--batch-size",
        "2",
        "--beams",
        "1",
        "--caption-max-len",
        "4",
        "--stalled-after",
        "2",
        *extra,
    ]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE)


def _chips(engine: Engine, scene_id: int) -> list[tuple[int, int, str]]:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT row, col, embedding::text FROM chips WHERE scene_id = :s ORDER BY 1, 2"),
            {"s": scene_id},
        ).all()


def test_sigkill_mid_scene_then_restart_gives_the_same_chips(
    engine: Engine, database_url: str, services: Services, tiny_model: Any
) -> None:
    item = {"ids": ["vienna_ortho_2023_30cm_alpha_footprint_rgba"]}
    killed_source = _source(
        engine, services, "killed", services.collection, search=item, chip_size_px=192
    )
    poll_source(engine, killed_source, enqueue=defer_ingest_jobs)
    with engine.connect() as connection:
        scene_id = connection.execute(text("SELECT id FROM scenes")).scalar_one()
    worker = _worker(database_url)
    deadline = time.monotonic() + 120
    while len(_chips(engine, scene_id)) < 2:
        assert worker.poll() is None, worker.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    with engine.connect() as connection:
        state = connection.execute(
            text("SELECT state FROM scenes WHERE id = :s"), {"s": scene_id}
        ).scalar()
    partial = len(_chips(engine, scene_id))
    assert state == "embedding"
    time.sleep(2.5)  # the dead worker's heartbeat goes stale (--stalled-after 2)
    restarted = _worker(database_url, "--exit-when-empty")
    _, stderr = restarted.communicate(timeout=180)
    assert restarted.returncode == 0, stderr.decode()[-2000:]
    after = _chips(engine, scene_id)
    with engine.connect() as connection:
        state, attempts = connection.execute(
            text("SELECT state, attempts FROM scenes WHERE id = :s"), {"s": scene_id}
        ).one()
    assert (state, attempts) == ("done", 2)
    assert len(after) > partial
    # The same chips as one uninterrupted run of the same item in another source.
    reference_source = _source(
        engine, services, "reference", services.collection, search=item, chip_size_px=192
    )
    poll_source(engine, reference_source, enqueue=None)
    with engine.connect() as connection:
        reference_id = connection.execute(
            text("SELECT id FROM scenes WHERE source_id = :s"), {"s": reference_source}
        ).scalar_one()
    Pipeline(
        engine, tiny_model, ChipSettings(batch_size=2, caption_beams=1, caption_max_len=4)
    ).ingest_scene(reference_id)
    reference = _chips(engine, reference_id)
    assert [(r, c) for r, c, _ in after] == [(r, c) for r, c, _ in reference]
    for (_, _, got), (_, _, want) in zip(after, reference, strict=True):
        got_vector = np.array(got.strip("[]").split(","), float)
        want_vector = np.array(want.strip("[]").split(","), float)
        assert float(got_vector @ want_vector) > 0.999
