"""Model versions and their per-model HNSW indexes."""

from __future__ import annotations

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects.postgresql import insert

from ..errors import Conflict
from ..models import Model

# HNSW build parameters (pgvector defaults); the benchmark of filtered search revisits them.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def hnsw_index_name(model_id: int) -> str:
    return f"chips_embedding_hnsw_{model_id}"


def register_model(
    connection: Connection,
    *,
    name: str,
    version: str,
    sha256: str,
    embedding_dim: int,
    hnsw_m: int = HNSW_M,
    hnsw_ef_construction: int = HNSW_EF_CONSTRUCTION,
) -> int:
    """Insert the model version if new and make its HNSW index; returns the model id.

    The index covers `embedding::halfvec(D)` of that model's rows only, so searches must use
    the same expression and `model_id = :id` to use it. Idempotent. `hnsw_m` and
    `hnsw_ef_construction` are pgvector's graph parameters (benchmarks.search_scale compares).
    """
    row_id = connection.execute(
        insert(Model)
        .values(name=name, version=version, sha256=sha256, embedding_dim=embedding_dim)
        .on_conflict_do_nothing(index_elements=["name", "version"])
        .returning(Model.id)
    ).scalar()
    existing = connection.execute(
        select(Model.id, Model.sha256, Model.embedding_dim).where(
            Model.name == name, Model.version == version
        )
    ).one()
    if (existing.sha256, existing.embedding_dim) != (sha256, embedding_dim):
        raise Conflict(
            f"model {name}@{version} is registered with sha256 {existing.sha256[:12]}… and "
            f"dimension {existing.embedding_dim}, not {sha256[:12]}… and {embedding_dim}; "
            "give the new weights a new version"
        )
    model_id = int(row_id if row_id is not None else existing.id)
    # Identifiers cannot be bound parameters; both values are integers we produced.
    connection.execute(
        text(
            f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(model_id)} ON chips "
            f"USING hnsw ((embedding::halfvec({int(embedding_dim)})) halfvec_cosine_ops) "
            f"WITH (m = {int(hnsw_m)}, ef_construction = {int(hnsw_ef_construction)}) "
            f"WHERE model_id = {model_id}"
        )
    )
    return model_id
