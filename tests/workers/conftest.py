"""Session-wide real services for the ingestion tests: static COG server, rustac STAC API, the
tiny random model. Each test gets its own migrated database (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from geomelt.db import create_db_engine
from geomelt.model import load
from geomelt.workers import ChipSettings, Pipeline

from .fixtures import (
    COLLECTION,
    FAULT_COLLECTION,
    Catalog,
    build_catalog,
    fault_items,
    rustac_server,
    static_server,
)


@dataclass(frozen=True)
class Services:
    stac_url: str
    files_url: str
    catalog: Catalog
    faults: dict[str, dict[str, Any]]
    collection: str = COLLECTION
    fault_collection: str = FAULT_COLLECTION


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    root: Path = tmp_path_factory.mktemp("stac")
    (root / "data").mkdir()
    with static_server(root / "data", stall_s=8.0) as files_url:
        catalog = build_catalog(root, files_url)
        faults = fault_items(catalog, files_url)
        everything = Catalog(root, catalog.items + list(faults.values()))
        everything.write()
        with rustac_server(everything.items_path) as stac_url:
            yield Services(stac_url, files_url, catalog, faults)


@pytest.fixture(scope="session")
def tiny_model() -> Any:
    return load("tiny-random")


# Small and fast: greedy captions of a few tokens; retries and timeouts short.
FAST = ChipSettings(batch_size=8, caption_beams=1, caption_max_len=6, http_timeout_s=2)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pipeline(engine: Engine, tiny_model: Any) -> Pipeline:
    return Pipeline(engine, tiny_model, FAST)
