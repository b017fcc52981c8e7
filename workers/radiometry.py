"""Radiometry: raster values of any kind to uint8 RGB for the model, by fixed per-kind mappings.

A fixed mapping per kind (not a per-chip stretch) keeps neighbouring chips and dates comparable:
the same ground looks the same in every chip.
"""

from __future__ import annotations

import enum
from typing import cast

import numpy as np

__all__ = ["Radiometry", "choose_radiometry", "to_uint8_rgb"]

# Surface reflectance is stored as reflectance x 10000 (Sentinel-2 L2A, Landsat C2 after scale);
# natural-colour renderings saturate around reflectance 0.3, as Sentinel-2 TCI does (0..3000).
REFLECTANCE_WHITE = 3000.0
FLOAT_REFLECTANCE_WHITE = 0.3


class Radiometry(enum.StrEnum):
    UINT8 = "uint8"  # visual products, already display values 0..255
    REFLECTANCE = "reflectance"  # integers, reflectance x 10000
    FLOAT = "float"  # floating point reflectance 0..1


def choose_radiometry(data_type: str) -> Radiometry:
    """The mapping for a raster data type (numpy/GDAL name such as 'uint8', 'uint16', 'float32')."""
    kind = np.dtype(data_type)
    if kind == np.uint8:
        return Radiometry.UINT8
    if np.issubdtype(kind, np.integer):
        return Radiometry.REFLECTANCE
    if np.issubdtype(kind, np.floating):
        return Radiometry.FLOAT
    raise ValueError(f"raster data type {data_type!r}: expected an integer or float type")


def to_uint8_rgb(bands: np.ndarray, radiometry: Radiometry) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) float with NaN for nodata, C = 1 or 3 -> ((H, W, 3) uint8, (H, W) valid mask).

    A pixel is valid when all its bands are finite; invalid pixels become black. One band is
    repeated as grey.
    """
    if bands.ndim != 3 or bands.shape[0] not in (1, 3):
        raise ValueError(f"bands of shape {bands.shape}: expected (1 or 3, H, W)")
    values = bands.astype(np.float32, copy=False)
    # .all(axis=0) of a 3-D array is a (H, W) array; numpy's stubs also allow a scalar.
    valid = cast(np.ndarray, np.isfinite(values).all(axis=0))
    if radiometry is Radiometry.UINT8:
        scaled = values
    elif radiometry is Radiometry.REFLECTANCE:
        scaled = values * (255.0 / REFLECTANCE_WHITE)
    else:
        scaled = values * (255.0 / FLOAT_REFLECTANCE_WHITE)
    scaled = np.where(valid, scaled, 0.0)
    pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if pixels.shape[0] == 1:
        pixels = np.repeat(pixels, 3, axis=0)
    return np.ascontiguousarray(pixels.transpose(1, 2, 0)), valid


def mean_brightness(pixels: np.ndarray, valid: np.ndarray) -> float | None:
    """Mean of the valid pixels' RGB mean, 0..255; None when nothing is valid."""
    if not valid.any():
        return None
    return float(pixels[valid].mean())
