"""Imagery for tests: the sample shipped with the package (geomelt/sample), and two files made
from it for cases the sample leaves out on purpose, so that no test needs ../shared.

- an RGBA orthophoto whose alpha band marks a non-rectangular footprint (a drone ortho's shape;
  the sample's Pix4D drone ortho was left out for its unclear terms), and
- a 300 m scene, coarser than the model reads (the sample keeps to 0.3-30 m after resampling).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, Resampling

from geomelt import SAMPLE_DIR

__all__ = [
    "COARSE_FILE",
    "RGBA_FILE",
    "SAMPLE_DIR",
    "made_entries",
    "sample_manifest",
    "write_coarse",
    "write_rgba",
]

RGBA_FILE = "vienna_ortho_2023_30cm_alpha_footprint_rgba.tif"
COARSE_FILE = "landsat7_olinda_brazil_300m_rgb.tif"
_RGBA_SOURCE = "vienna_ortho_2023_30cm_schoenbrunn_palace.tif"
_COARSE_SOURCE = "landsat7_olinda_brazil_etm_6band_28m.tif"
_COG = {"driver": "COG", "compress": "deflate", "blocksize": 256}


def sample_manifest() -> list[dict[str, Any]]:
    return json.loads((SAMPLE_DIR / "manifest.json").read_text())


def write_rgba(folder: Path) -> Path:
    """The Vienna palace crop plus an alpha band: opaque inside an ellipse, clear outside."""
    target = folder / RGBA_FILE
    if target.exists():
        return target
    with rasterio.open(SAMPLE_DIR / _RGBA_SOURCE) as src:
        profile, rgb = src.profile.copy(), src.read()
    height, width = rgb.shape[1:]
    rows, cols = np.ogrid[:height, :width]
    inside = ((rows - height / 2) / (height * 0.48)) ** 2 + (
        (cols - width / 2) / (width * 0.42)
    ) ** 2 <= 1
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    rgb[:, ~inside] = 0  # drone orthos are black where the alpha is clear
    profile.update(count=4, **_COG)
    for key in ("blockxsize", "blockysize", "tiled", "interleave", "photometric"):
        profile.pop(key, None)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(np.concatenate([rgb, alpha[None]]))
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    return target


def write_coarse(folder: Path) -> Path:
    """The Olinda Landsat crop (28.5 m) averaged down to about 300 m pixels, bands 3, 2, 1."""
    target = folder / COARSE_FILE
    if target.exists():
        return target
    with rasterio.open(SAMPLE_DIR / _COARSE_SOURCE) as src:
        size = (round(src.height * src.res[1] / 300), round(src.width * src.res[0] / 300))
        data = src.read((3, 2, 1), out_shape=(3, *size), resampling=Resampling.average)
        transform = src.transform @ src.transform.scale(src.width / size[1], src.height / size[0])
        profile = {"crs": src.crs, "transform": transform, "dtype": "uint8", "nodata": 0}
    with rasterio.open(
        target, "w", width=size[1], height=size[0], count=3, **profile, **_COG
    ) as dst:
        dst.write(data)
    return target


def made_entries() -> dict[str, dict[str, Any]]:
    """Manifest-style entries (../shared/data/geo schema) for the made files."""
    return {
        RGBA_FILE: {
            "file": RGBA_FILE,
            "title": "Vienna orthophoto 2023, alpha band with an elliptic footprint (test-made)",
            "datetime": "2023-06-01T00:00:00Z",
            "bands": ["red", "green", "blue", "alpha"],
            "dtype": "uint8",
            "gsd_m": 0.3,
        },
        COARSE_FILE: {
            "file": COARSE_FILE,
            "title": "Landsat 7 Olinda averaged to 300 m (made in tests)",
            "datetime": None,
            "bands": ["red", "green", "blue"],
            "dtype": "uint8",
            "gsd_m": 300.0,
        },
    }
