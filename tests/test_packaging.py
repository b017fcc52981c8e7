"""The distribution installs the repository folders under one import package, `geomelt`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import geomelt.db
import geomelt.model

ROOT = Path(__file__).resolve().parents[1]


def test_editable_install_maps_folders_under_geomelt() -> None:
    assert Path(geomelt.db.__file__).resolve() == ROOT / "db" / "__init__.py"
    assert Path(geomelt.model.__file__).resolve() == ROOT / "model" / "__init__.py"


def test_wheel_contains_only_the_geomelt_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("geomelt_search-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top_level == {"geomelt"}
    for module in ("cli", "model", "db", "workers", "engine"):
        assert f"geomelt/{module}/__init__.py" in names
    assert "geomelt/db/migrations/env.py" in names
    assert any(name.startswith("geomelt/db/migrations/versions/0001") for name in names)
