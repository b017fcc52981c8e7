"""Query builders shared by workers and engine (SQLAlchemy Core, bound parameters only)."""

from .models import hnsw_index_name, register_model

__all__ = ["hnsw_index_name", "register_model"]
