"""GeoMELT Search: natural-language search over Earth imagery.

The import package maps the repository's top-level folders: ``geomelt.model`` (model/),
``geomelt.db`` (db/), ``geomelt.workers`` (workers/), ``geomelt.engine`` (engine/) and
``geomelt.cli`` (cli/).
"""

from pathlib import Path

__version__ = "0.1.0"

# Openly licensed GeoTIFF crops installed with the package (geomelt/sample/LICENSES.md); cut by
# scripts/cut_sample.py. `geomelt demo` with no argument ingests them; so do the tests.
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
