"""One Controller per resource."""

from .admin import AdminController, SourcesController
from .collections import CollectionsController
from .root import RootController
from .search import SearchController

__all__ = [
    "AdminController",
    "CollectionsController",
    "RootController",
    "SearchController",
    "SourcesController",
]
