"""Model registration and its per-model HNSW index."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geomelt.db import Conflict, create_db_engine, unit_of_work
from geomelt.db.queries import hnsw_index_name, register_model


def test_register_model_is_idempotent_and_indexes_its_rows(database_url: str) -> None:
    engine = create_db_engine(database_url)
    with unit_of_work(engine) as connection:
        first = register_model(
            connection, name="tiny", version="1", sha256="a" * 64, embedding_dim=4
        )
    with unit_of_work(engine) as connection:
        again = register_model(
            connection, name="tiny", version="1", sha256="a" * 64, embedding_dim=4
        )
        definition = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
            {"n": hnsw_index_name(first)},
        ).scalar_one()
        connection.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            connection.execute(
                text(
                    "EXPLAIN SELECT id FROM chips WHERE model_id = :m "
                    "ORDER BY embedding::halfvec(4) <=> '[1,0,0,0]'::halfvec(4) LIMIT 5"
                ),
                {"m": first},
            ).scalars()
        )
    engine.dispose()

    assert again == first
    assert "hnsw" in definition
    assert f"WHERE (model_id = {first})" in definition
    assert hnsw_index_name(first) in plan


def test_same_version_with_other_weights_is_a_conflict(database_url: str) -> None:
    engine = create_db_engine(database_url)
    with unit_of_work(engine) as connection:
        register_model(connection, name="tiny", version="1", sha256="a" * 64, embedding_dim=4)
    with pytest.raises(Conflict, match="tiny@1"), unit_of_work(engine) as connection:
        register_model(connection, name="tiny", version="1", sha256="b" * 64, embedding_dim=4)
    engine.dispose()
