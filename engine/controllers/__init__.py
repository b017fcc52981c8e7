"""One Controller per resource."""

from .admin import AdminController, SourcesController
from .collections import CollectionsController
from .files import FilesController
from .root import RootController
from .search import SearchController

__all__ = [
    "AdminController",
    "CollectionsController",
    "FilesController",
    "RootController",
    "SearchController",
    "SourcesController",
]
