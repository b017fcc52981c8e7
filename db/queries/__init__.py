"""Query builders shared by workers and engine (SQLAlchemy Core, bound parameters only)."""

from .ingest import ChipRecord, SceneRecord, upsert_chips, upsert_scene
from .models import hnsw_index_name, register_model

__all__ = [
    "ChipRecord",
    "SceneRecord",
    "hnsw_index_name",
    "register_model",
    "upsert_chips",
    "upsert_scene",
]
