"""`geomelt demo`: end to end in a subprocess (start, query, Ctrl-C), the shipped sample, and every
bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.errors import NotGeoreferencedWarning

from geomelt import SAMPLE_DIR
from geomelt.cli import demo as demo_module
from geomelt.cli import main
from geomelt.db.embedded import free_port
from geomelt.workers.local import local_catalog

from .conftest import link_files

GEOMELT = str(Path(sys.executable).parent / "geomelt")
# Two CRSs, uint8 RGB and uint16 reflectance band assets; a few ground-grid cells each.
GOOD_FILES = (
    "s2_demmin_20230603_10m_b04b03b02b08_4326.tif",
    "vienna_ortho_2023_30cm_schoenbrunn_park.tif",
)


def _write_bad_files(folder: Path) -> None:
    """Random bytes, a GeoTIFF and a PNG without georeferencing, a truncated COG, a text file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    (folder / "garbage.tif").write_bytes(rng.integers(0, 256, 40_000, np.uint8).tobytes())
    with (
        warnings.catch_warnings(category=NotGeoreferencedWarning, action="ignore"),
        rasterio.open(
            folder / "no_georef.tif",
            "w",
            driver="GTiff",
            width=64,
            height=64,
            count=3,
            dtype="uint8",
        ) as plain,
    ):
        plain.write(rng.integers(0, 256, (3, 64, 64), np.uint8))
    with (
        warnings.catch_warnings(category=NotGeoreferencedWarning, action="ignore"),
        rasterio.open(
            folder / "photo.png", "w", driver="PNG", width=32, height=32, count=3, dtype="uint8"
        ) as png,
    ):
        png.write(rng.integers(0, 256, (3, 32, 32), np.uint8))
    source = SAMPLE_DIR / "usgs_hro_colorado_201404_15cm_residential.tif"
    (folder / "truncated.tif").write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    (folder / "notes.txt").write_text("not imagery")


def _start_demo(
    source: list[str], env: dict[str, str], port: int, give_up_s: float = 150
) -> tuple[subprocess.Popen, list]:
    process = subprocess.Popen(
        [GEOMELT, "demo", *source, "--no-browser", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    # A guard against a hung start, not a speed check (benchmarks/ measure speed).
    deadline = time.monotonic() + give_up_s
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
            break
    return process, lines


def _stop(process: subprocess.Popen, lines: list[str]) -> None:
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    lines.append(rest)
    assert process.returncode == 0, "".join(lines)
    assert "geomelt demo stopped." in rest


def test_demo_folder_end_to_end_then_a_second_start_skips_done_scenes(
    database_url: str, tmp_path: Path
) -> None:
    folder = link_files(tmp_path / "imagery", GOOD_FILES)
    _write_bad_files(folder)
    env = {
        **os.environ,
        "GEOMELT_DATABASE_URL": database_url,
        "GEOMELT_DATA_DIR": str(tmp_path / "data"),
        "GEOMELT_DEMO_DATA": "",
    }
    port = free_port()
    # --max-items bounds --stac-api only: a folder is ingested whole.
    process, lines = _start_demo([str(folder), "--max-items", "1"], env, port)
    output = "".join(lines)
    try:
        assert f"http://127.0.0.1:{port}/app" in output, output
        assert re.search(r"skipped garbage\.tif: .+", output), output
        assert re.search(r"skipped no_georef\.tif: not georeferenced", output), output
        assert re.search(r"skipped photo\.png: a \.png image without georeferencing", output)
        assert re.search(r"failed truncated: .*(corrupt|truncated|not a readable)", output), output
        assert "notes.txt" not in output
        assert "ingested 2 scenes" in output
        examples = re.findall(r"curl '([^']+)'", output)
        assert len(examples) == 3
        for example in examples:
            with urllib.request.urlopen(example, timeout=30) as response:  # noqa: S310
                assert json.load(response)["features"], example
        query = f"http://127.0.0.1:{port}/search?q=red%20roofs&limit=50"
        with urllib.request.urlopen(query, timeout=30) as response:
            features = json.load(response)["features"]
        stems = {Path(name).stem for name in GOOD_FILES}
        assert {f["id"].rsplit("_", 2)[0] for f in features} == stems
        assert all("search:score" in f["properties"] for f in features)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=30) as page:
            assert b"GeoMELT Search" in page.read()
    finally:
        _stop(process, lines)

    # Unchanged scenes are no-ops: the second start ingests nothing new.
    began = time.monotonic()
    process, lines = _start_demo([str(folder)], env, port)
    ready_s = time.monotonic() - began
    output = "".join(lines)
    try:
        assert "ingested 0 scenes (0 chips)" in output, output
        assert f"http://127.0.0.1:{port}/app" in output
        assert ready_s < 120
    finally:
        _stop(process, lines)


# What each example query of the sample must find among the five hits it prints (file names).
SAMPLE_HITS = {
    "storage tanks": ("spacenet6_rotterdam_wv2_pan_50cm_industrial_tanks",),
    "meandering river": ("landsat_pucallpa_peru",),
    "sea and desert coast": ("s2_tci_34SGA_20200318_tobruk_libya",),
    "parking lot with cars": ("vienna_ortho", "spacenet6_rotterdam_wv2_pan_50cm_residential"),
    "residential area": ("usgs_hro_colorado", "spacenet6_rotterdam_wv2_pan_50cm_residential"),
}


def test_demo_without_arguments_serves_the_sample_and_its_examples_find_it(
    database_url: str, tmp_path: Path
) -> None:
    """The README's main command: the shipped sample with the default model."""
    assert set(SAMPLE_HITS) == set(demo_module.SAMPLE_QUERIES)
    env = {
        **os.environ,
        "GEOMELT_DATABASE_URL": database_url,
        "GEOMELT_DATA_DIR": str(tmp_path / "data"),
        "GEOMELT_DEMO_DATA": "",
    }
    env.pop("GEOMELT_API_MODEL", None)
    port = free_port()
    # The whole sample with the default model: minutes on a busy 2-core machine.
    process, lines = _start_demo([], env, port, give_up_s=1200)
    output = "".join(lines)
    try:
        assert f"19 GeoTIFFs in {SAMPLE_DIR} served as a STAC API" in output, output
        assert re.search(r"ingested 19 scenes \(\d+ chips\) .*; 0 failed", output), output
        assert "skipped" not in output
        examples = re.findall(r"curl '([^']+)'", output)
        for query, files in SAMPLE_HITS.items():
            url = next(e for e in examples if f"q={urllib.parse.quote(query)}&" in e)
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
                ids = [f["id"] for f in json.load(response)["features"]]
            assert any(i.startswith(files) for i in ids), (query, ids)
    finally:
        _stop(process, lines)


def _invoke(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["demo", *args], env={"GEOMELT_DEMO_DATA": "", **env})
    return result.exit_code, result.output


def test_a_damaged_sample_file_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = tmp_path / "sample"
    shutil.copytree(SAMPLE_DIR, sample)
    demo_module.check_sample(sample)  # an intact copy passes
    damaged = sample / "naip_nd_20120731_m_4709963_se_14_5m.tif"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    monkeypatch.setattr(demo_module, "SAMPLE_DIR", sample)
    code, output = _invoke(["--no-browser", "--port", "0"], {})
    assert code == 2, output
    assert f"sample file {damaged}: sha256" in output
    assert "pip install --force-reinstall --no-deps geomelt-search" in output
    assert "git checkout -- geomelt/sample" in output

    damaged.unlink()
    code, output = _invoke(["--no-browser", "--port", "0"], {})
    assert code == 2, output
    assert f"sample file {damaged}: No such file" in output


def test_bad_paths_and_arguments_exit_2_with_the_reason(tmp_path: Path) -> None:
    code, output = _invoke([str(tmp_path / "nowhere")], {})
    assert code == 2
    assert "nowhere: does not exist" in output

    code, output = _invoke([], {"GEOMELT_DEMO_DATA": str(tmp_path / "unset-place")})
    assert code == 2
    assert "unset-place: does not exist" in output

    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "readme.md").write_text("no imagery here")
    (tmp_path / "text" / "manifest.json").write_text("[]")
    code, output = _invoke([str(tmp_path / "text")], {})
    assert code == 2
    assert "holds no GeoTIFF" in output

    code, output = _invoke([str(tmp_path / "text"), "--stac-api", "http://127.0.0.1:9"], {})
    assert code == 2
    assert "either PATH or --stac-api" in output

    code, output = _invoke(["--stac-api", "http://127.0.0.1:9"], {})
    assert code == 2
    assert "--stac-api needs --collection" in output


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    folder = link_files(tmp_path / "imagery", GOOD_FILES[:1])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, output = _invoke([str(folder), "--port", str(port), "--no-browser"], {})
    assert code == 2
    assert f"--port {port} on 127.0.0.1: cannot listen" in output
    assert "pass another --port" in output


def test_a_folder_of_only_broken_files_exits_2_listing_each(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "broken"
    _write_bad_files(folder)
    (folder / "truncated.tif").unlink()
    env = {"GEOMELT_DATABASE_URL": database_url, "GEOMELT_DATA_DIR": str(tmp_path / "data")}
    code, output = _invoke([str(folder), "--no-browser", "--port", str(free_port())], env)
    assert code == 2, output
    assert "skipped garbage.tif" in output
    assert "skipped no_georef.tif: not georeferenced" in output
    assert "skipped photo.png: a .png image without georeferencing" in output
    assert "gdal_translate" in output
    assert "none of its files is a usable GeoTIFF" in output


def test_an_unreachable_stac_api_is_a_clear_error(database_url: str, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"GEOMELT_DATABASE_URL": database_url, "GEOMELT_DATA_DIR": str(tmp_path / "data")}
    args = ["--stac-api", dead, "--collection", "sentinel-2-l2a", "--max-items", "2"]
    code, output = _invoke([*args, "--no-browser", "--port", str(free_port())], env)
    assert code == 5, output
    assert dead in output
    assert "check the URL and that the API is up" in output


def test_demo_from_a_stac_api_ingests_at_most_max_items(database_url: str, tmp_path: Path) -> None:
    folder = link_files(tmp_path / "imagery", GOOD_FILES)
    env = {
        **os.environ,
        "GEOMELT_DATABASE_URL": database_url,
        "GEOMELT_DATA_DIR": str(tmp_path / "data"),
    }
    port = free_port()
    with local_catalog(folder, tmp_path / "catalog") as (stac_url, catalog):
        source = ["--stac-api", stac_url, "--collection", catalog.collection, "--max-items", "1"]
        process, lines = _start_demo(source, env, port)
        try:
            output = "".join(lines)
            assert "ingested 1 scenes" in output, output
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/collections/{catalog.collection}", timeout=30
            ) as response:
                assert json.load(response)["id"] == catalog.collection
        finally:
            _stop(process, lines)
