"""A model with search fusion end to end: the workers store its search vectors (registered at
their width), and `q` searches of the real app rank them with its query vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from geomelt.db import unit_of_work
from geomelt.engine import AppDeps, EngineConfig, create_app
from geomelt.model import GeoMelt, create_model, get_config, load
from geomelt.model.config import VisionConfig
from geomelt.model.fusion import FusionHeads, FusionSpec, attach_fusion
from geomelt.model.train import export
from geomelt.workers import Pipeline, SourceSpec, add_source, poll_source

from .conftest import FAST, Services


def _fused_tiny(folder: Path) -> GeoMelt:
    config = get_config("tiny").replace(
        vision=VisionConfig(
            img_size=64, patch_size=32, stem="efficientnet-lite0", stem_tune_from=13
        ),
        tie_word_embeddings=True,
    )
    export(create_model(config, seed=0), folder / "plain.safetensors")
    spec = FusionSpec(caption_weight=1.0, heads_weight=2.0)
    torch.manual_seed(0)
    attach_fusion(
        folder / "plain.safetensors", folder / "fused.safetensors", FusionHeads(spec), spec
    )
    return load(folder / "fused.safetensors")


def test_fused_model_ingests_search_vectors_and_ranks_q_by_them(
    engine: Engine, services: Services, database_url: str, tmp_path: Path
) -> None:
    model = _fused_tiny(tmp_path)
    width = model.search_dim
    assert width == model.embedding_dim + 384 + 256  # GeoMELT + MiniLM + heads
    spec = SourceSpec.from_options(
        name="fused",
        stac_api_url=services.stac_url,
        collection=services.collection,
        chip_size_px=64,
    )
    with unit_of_work(engine) as connection:
        source_id = add_source(connection, spec, allow_private_hosts=True)
    poll_source(engine, source_id, enqueue=None)
    with engine.connect() as connection:
        scene_id = connection.execute(
            text("SELECT id FROM scenes WHERE item_id = :item"),
            {"item": "usgs_hro_colorado_201404_15cm_residential"},
        ).scalar_one()
    result = Pipeline(engine, model, FAST).ingest_scene(scene_id)
    assert result.chips > 0
    with engine.connect() as connection:
        registered = connection.execute(text("SELECT embedding_dim FROM models")).scalar_one()
        rows = connection.execute(
            text("SELECT caption, embedding::text FROM chips ORDER BY id")
        ).all()
    assert registered == width
    vectors = np.array([[float(x) for x in v.strip("[]").split(",")] for _, v in rows])
    assert vectors.shape == (result.chips, width)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)
    # The query of a stored caption, ranked by the app, finds chips; its vector is the model's.
    query = rows[0][0]
    expected = model.encode_queries([query])[0].numpy()
    assert expected.shape == (width,)
    config = EngineConfig(database_url=database_url, secret=b"test")
    with TestClient(create_app(AppDeps(config=config, load_model=lambda: model))) as client:
        response = client.get("/search", params={"q": query, "limit": "3"})
        assert response.status_code == 200, response.text
        assert response.json()["features"]
        root = client.get("/").json()
    assert width in {v for v in _values(root) if isinstance(v, int)}


def _values(document: object) -> list[object]:
    if isinstance(document, dict):
        return [x for v in document.values() for x in _values(v)]
    if isinstance(document, list):
        return [x for v in document for x in _values(v)]
    return [document]
