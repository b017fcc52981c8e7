"""Real services for the demo tests: a folder of real COGs (the shipped sample), a database
seeded through the real ingestion path (local catalog -> rustac -> Range reads -> tiny-random
model), real uvicorn."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn

from geomelt import SAMPLE_DIR
from geomelt.db import EmbeddedPostgres, create_db_engine
from geomelt.db.embedded import free_port
from geomelt.engine import AppDeps, EngineConfig, create_app
from geomelt.model import load
from geomelt.workers import ChipSettings, Pipeline, SourceSpec, ingest_once
from geomelt.workers.local import local_catalog

# Three dates (2012, 2020, 2023) and a 2019 interval, four CRSs (EPSG:26914, 32634, 4326,
# 32631), uint8 RGB, uint16 reflectance and uint16 pan; a few chips each on the ground grid
# (files smaller than half a 224 px cell yield none), so seeding takes seconds.
SEED_FILES = (
    "naip_nd_20120731_m_4709963_se_14_5m.tif",
    "s2_tci_34SGA_20200318_tobruk_libya_100m.tif",
    "s2_demmin_20230603_10m_b04b03b02b08_4326.tif",
    "spacenet6_rotterdam_wv2_pan_50cm_port_quay.tif",
)
FAST = ChipSettings(batch_size=16, caption_beams=1, caption_max_len=8)


def link_files(folder: Path, names: tuple[str, ...]) -> Path:
    """A folder of symlinks to sample files (read in place, never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).symlink_to(SAMPLE_DIR / name)
    return folder


@pytest.fixture(scope="session")
def tiny_model() -> Any:
    return load("tiny-random")


@contextmanager
def ingested_database(
    files: tuple[str, ...],
    root: Path,
    *,
    embedded_server: EmbeddedPostgres,
    template_database: str,
    model: Any,
) -> Iterator[str]:
    """A migrated database holding the chips of sample `files`, ingested through the real
    path (local catalog -> rustac -> Range reads -> `model`); dropped afterwards."""
    name = f"demo_{uuid.uuid4().hex[:12]}"
    admin_url = embedded_server.database_url("postgres").replace("+psycopg", "")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    database_url = embedded_server.database_url(name)
    folder = link_files(root / "imagery", files)
    engine = create_db_engine(database_url)
    try:
        with local_catalog(folder, root / "work") as (stac_url, catalog):
            assert not catalog.skipped
            spec = SourceSpec(
                name=catalog.collection, stac_api_url=stac_url, collection=catalog.collection
            )
            summary = ingest_once(
                engine, spec, Pipeline(engine, model, FAST), allow_private_hosts=True
            )
        assert summary.scenes_done == len(files), summary.failures
        yield database_url
    finally:
        engine.dispose()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def seeded_database(
    embedded_server: EmbeddedPostgres,
    template_database: str,
    tiny_model: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A migrated database holding the chips of SEED_FILES, shared by a module's tests."""
    with ingested_database(
        SEED_FILES,
        tmp_path_factory.mktemp("seed"),
        embedded_server=embedded_server,
        template_database=template_database,
        model=tiny_model,
    ) as database_url:
        yield database_url


@pytest.fixture(scope="module")
def live_server(seeded_database: str, tiny_model: Any) -> Iterator[str]:
    """The API and page under real uvicorn on a free loopback port; yields the base URL."""
    config = EngineConfig(database_url=seeded_database, secret=b"demo-tests")
    app = create_app(AppDeps(config=config, load_model=lambda: tiny_model))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 60 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
