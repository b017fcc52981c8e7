"""Run stac-api-validator 0.6.8 against a real server seeded through the write path.

    .venv/bin/python -m tests.engine.run_validator [--venv DIR]

The validator lives in its own virtual environment (it pins its own pystac, pystac-client,
stac-validator, shapely ...); it is created on first use. It runs offline: a wrapper makes
stac-validator read the STAC 1.1.0 and GeoJSON schemas bundled in pystac instead of
downloading them (../shared/specs/STAC_API.md section 5). Exit status: the validator's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from geomelt.db import EmbeddedPostgres, upgrade
from geomelt.engine import AppDeps, EngineConfig, create_app
from geomelt.model import load

from .seeding import seed_url

VALIDATOR = "stac-api-validator==0.6.8"
DEFAULT_VENV = Path(tempfile.gettempdir()) / "geomelt-stac-api-validator-venv"
CONFORMANCE = [
    "core",
    "collections",
    "features",
    "item-search",
    "filter",
    "item-search#sort",
    "item-search#fields",
]
GEOMETRY = {
    "type": "Polygon",
    "coordinates": [[[2.0, 48.5], [2.5, 48.5], [2.5, 48.9], [2.0, 48.9], [2.0, 48.5]]],
}

WRAPPER = r"""
import json, sys
from pathlib import Path
import pystac.validation
import stac_validator.utilities as utilities

BUNDLED = Path(pystac.validation.__file__).parent / "jsonschemas"
PREFIXES = {
    "https://schemas.stacspec.org/v1.1.0/": BUNDLED / "stac-spec" / "v1.1.0",
    "https://geojson.org/schema/": BUNDLED / "geojson",
}
original = utilities.fetch_and_parse_schema

def offline(input_path):
    for prefix, folder in PREFIXES.items():
        if input_path.startswith(prefix):
            name = input_path[len(prefix):].split("/")[-1]
            return json.loads((folder / name).read_text())
    if input_path.startswith("https://stac-extensions.github.io/"):
        # No installable package bundles the extension schemas (projection, raster, eo), and
        # the run is offline: items are checked against core STAC and GeoJSON only;
        # tests/engine/test_interop.py checks that loaders read the extension fields.
        return {"type": "object"}
    return original(input_path)

utilities.fetch_and_parse_schema = offline
import stac_validator.validate as validate_module
for module in (validate_module,):
    if hasattr(module, "fetch_and_parse_schema"):
        module.fetch_and_parse_schema = offline
from stac_api_validator.__main__ import main
sys.exit(main())
"""


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", VALIDATOR], check=True)
        marker.write_text(VALIDATOR)
    return python


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    python = ensure_venv(args.venv)
    model = load("tiny-random")
    with tempfile.TemporaryDirectory() as scratch, EmbeddedPostgres(Path(scratch) / "pg") as pg:
        upgrade(pg.url)
        seed_url(pg.url, model)
        config = EngineConfig(database_url=pg.url, secret=b"validator")
        app = create_app(AppDeps(config=config, load_model=lambda: model))
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                return 2
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        wrapper = Path(scratch) / "validate.py"
        wrapper.write_text(WRAPPER)
        command = [str(python), str(wrapper), "--root-url", f"http://127.0.0.1:{port}/"]
        for conformance in CONFORMANCE:
            command += ["--conformance", conformance]
        command += [
            "--collection",
            "sentinel-2-l2a",
            "--geometry",
            json.dumps(GEOMETRY),
            "--fields-nested-property",
            "properties.eo:cloud_cover",
            "--validate-pagination",
        ]
        started = time.monotonic()
        status = subprocess.run(command, check=False).returncode
        print(f"stac-api-validator exit {status} in {time.monotonic() - started:.0f} s", flush=True)  # noqa: T201
        server.should_exit = True
        thread.join(timeout=10)
    return status


if __name__ == "__main__":
    sys.exit(main())
