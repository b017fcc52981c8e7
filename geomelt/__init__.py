"""GeoMELT Search: natural-language search over Earth imagery.

The import package maps the repository's top-level folders: ``geomelt.model`` (model/),
``geomelt.db`` (db/), ``geomelt.workers`` (workers/), ``geomelt.engine`` (engine/) and
``geomelt.cli`` (cli/).
"""

__version__ = "0.1.0"
