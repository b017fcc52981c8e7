"""The Litestar STAC API with natural-language and example-based search."""

from .app import create_app
from .auth import issue_key
from .client import semantic_search
from .config import AppDeps, EngineConfig

__all__ = ["AppDeps", "EngineConfig", "create_app", "issue_key", "semantic_search"]
