"""Packaging: `geomelt/` links the user's top-level folders, so a checkout, the static tools and a
built wheel all see one import package; the wheel works on its own, sample included."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

import geomelt.db
import geomelt.model
from geomelt.db.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]
# The wheel's environment must not see a checkout: CI's second run sets PYTHONPATH to its copy.
WHEEL_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
# Top-level folders that are not part of the import package.
NOT_PACKAGES = {"tests", "benchmarks", "scripts", "docs", "geomelt"}


def _packages_in(folder: Path, prefix: str) -> set[str]:
    """Dotted names of every folder with an __init__.py under `folder`, links followed."""
    found = set()
    for root, _, files in os.walk(folder, followlinks=True):
        if "__init__.py" in files:
            relative = Path(root).relative_to(folder)
            found.add(".".join((prefix, *relative.parts)))
    return found


def test_geomelt_links_every_top_level_package() -> None:
    folders = {
        p.name
        for p in ROOT.iterdir()
        if (p / "__init__.py").is_file() and not p.is_symlink() and p.name not in NOT_PACKAGES
    }
    assert folders == {"cli", "db", "engine", "model", "workers"}
    for name in folders:
        link = ROOT / "geomelt" / name
        assert link.is_symlink(), f"geomelt/{name} must link ../{name}"
        assert link.resolve() == ROOT / name
    assert Path(geomelt.db.__file__).resolve() == ROOT / "db" / "__init__.py"
    assert Path(geomelt.model.__file__).resolve() == ROOT / "model" / "__init__.py"


def test_mypy_follows_imports_across_packages(tmp_path: Path) -> None:
    """A cross-package type error is caught (it was Any while geomelt.* did not resolve)."""
    snippet = (
        "from geomelt.db import create_db_engine\n"
        "from geomelt.workers import SourceSpec\n"
        "engine: int = create_db_engine('postgresql+psycopg://u@h/d')\n"
        "spec = SourceSpec(name='s', stac_api_url='http://x', collection=3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "-c", snippet],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r'expression has type "Engine", variable has type "int"', result.stdout)
    assert re.search(r'Argument "collection" to "SourceSpec" has incompatible type', result.stdout)


def _build_wheel(out: Path) -> Path:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-q", "-w", str(out), str(ROOT)], env=WHEEL_ENV, check=True)
    (wheel,) = out.glob("geomelt_search-*.whl")
    return wheel


def _fresh_venv(path: Path) -> Path:
    """A new environment holding the wheel only; its dependencies are the dev venv's packages,
    linked one by one (everything except geomelt itself), so torch is not installed twice."""
    venv.create(path, with_pip=False)
    (site,) = path.glob("lib/python*/site-packages")
    deps = path / "deps"
    deps.mkdir()
    (dev_site,) = VENV.glob("lib/python*/site-packages")
    for entry in dev_site.iterdir():
        name = entry.name.lower()
        if name.startswith(("geomelt", "__editable__", "_geomelt")) or name.endswith(".pth"):
            continue
        (deps / entry.name).symlink_to(entry)
    (site / "dev-dependencies.pth").write_text(f"{deps}\n")
    # The one dependency program geomelt runs (the folder's STAC API): pip would have written
    # its launcher into this venv's bin; write it with this venv's interpreter.
    launcher = (VENV / "bin" / "rustac").read_text().split("\n", 1)[1]
    rustac = path / "bin" / "rustac"
    rustac.write_text(f"#!{path / 'bin' / 'python'}\n{launcher}")
    rustac.chmod(0o755)
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, python of a fresh venv with it installed)."""
    root = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(root / "dist")
    python = _fresh_venv(root / "venv")
    pip = [VENV / "bin" / "python", "-m", "pip", "--python", python, "install", "-q"]
    # Without the checkout on PYTHONPATH: its egg-info would make pip see the wheel as installed.
    subprocess.run([*pip, "--no-deps", "--no-index", str(wheel)], env=WHEEL_ENV, check=True)
    return wheel, python


def test_wheel_holds_every_package_real_files_and_the_data(wheel_env: tuple[Path, Path]) -> None:
    wheel, _ = wheel_env
    with zipfile.ZipFile(wheel) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    top_level = {name.split("/")[0] for name in infos if ".dist-info/" not in name}
    assert top_level == {"geomelt"}
    packages = _packages_in(ROOT / "geomelt", "geomelt")
    assert "geomelt.engine.controllers" in packages
    for package in packages:
        assert f"{package.replace('.', '/')}/__init__.py" in infos, package
    # Links became files: no entry is a symlink (mode 0o120000 in the upper bits).
    assert not [n for n, i in infos.items() if (i.external_attr >> 16) & 0o170000 == 0o120000]
    sample = json.loads((ROOT / "geomelt" / "sample" / "manifest.json").read_text())
    for entry in sample:
        assert f"geomelt/sample/{entry['file']}" in infos
    assert "geomelt/sample/LICENSES.md" in infos
    assert "geomelt/model/weights/geomelt-small.safetensors" in infos
    assert "geomelt/db/migrations/script.py.mako" in infos
    assert any(name.startswith("geomelt/db/migrations/versions/0001") for name in infos)


def test_installed_wheel_imports_every_module_and_runs(
    wheel_env: tuple[Path, Path], database_url: str, tmp_path: Path
) -> None:
    _, python = wheel_env
    # Outside the checkout: nothing but the installed wheel provides geomelt.
    check = (
        "import importlib, pkgutil, geomelt\n"
        "names = [m.name for m in pkgutil.walk_packages(geomelt.__path__, 'geomelt.')]\n"
        # The migrations' env.py is a script alembic runs, not a module to import.
        "names = [n for n in names if n != 'geomelt.db.migrations.env']\n"
        "for name in names: importlib.import_module(name)\n"
        "print(geomelt.__file__, len(names))\n"
    )
    result = subprocess.run(
        [python, "-c", check], cwd=tmp_path, env=WHEEL_ENV, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    location, count = result.stdout.split()
    assert Path(location).is_relative_to(python.parents[1])
    assert int(count) > 90
    geomelt_bin = python.parent / "geomelt"
    help_text = subprocess.run(
        [geomelt_bin, "--help"], cwd=tmp_path, env=WHEEL_ENV, capture_output=True, text=True,
        check=True,
    ).stdout
    assert "demo" in help_text

    port = free_port()
    env = {
        **WHEEL_ENV,
        "GEOMELT_DATABASE_URL": database_url,
        "GEOMELT_DATA_DIR": str(tmp_path / "data"),
        "GEOMELT_DEMO_DATA": "",
    }
    command = [geomelt_bin, "demo", "--no-browser", "--port", str(port), "--model", "tiny-random"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 900  # a guard against a hung start, not a speed check
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
                break
        output = "".join(lines)
        sample_dir = python.parents[1] / "lib"
        assert re.search(rf"19 GeoTIFFs in {re.escape(str(sample_dir))}\S+/geomelt/sample", output)
        assert "; 0 failed" in output, output
        query = re.findall(r"curl '([^']+)'", output)[0]
        with urllib.request.urlopen(query, timeout=30) as response:  # noqa: S310 - loopback
            assert json.load(response)["features"], query
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(lines) + rest
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
