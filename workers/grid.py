"""Chip grids and footprints: pure functions of raster sizes, affine transforms and arrays.

Conventions: pixel windows are (x offset, y offset, width, height) in the raster's own grid; an
affine transform is GDAL order (a, b, c, d, e, f): x = a*col + b*row + c, y = d*col + e*row + f.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ChipWindow",
    "Transform",
    "chip_windows",
    "densified_window_ring",
    "grid_shape",
    "valid_fraction",
    "window_footprint",
]

Transform = tuple[float, float, float, float, float, float]
# Maps arrays of x and y in the raster CRS to arrays of lon and lat (EPSG:4326).
ToLonLat = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ChipWindow:
    """One grid cell: its row and column in the grid and its pixel window, clipped to the raster."""

    row: int
    col: int
    x_px: int
    y_px: int
    width_px: int
    height_px: int


def _count(size_px: int, chip_px: int, overlap_px: int) -> int:
    stride = chip_px - overlap_px
    # Enough cells that the last one reaches the raster's edge; at least one for tiny rasters.
    return max(1, math.ceil((size_px - overlap_px) / stride))


def grid_shape(width_px: int, height_px: int, chip_px: int, overlap_px: int) -> tuple[int, int]:
    """(rows, cols) of the chip grid."""
    _check(width_px, height_px, chip_px, overlap_px)
    return _count(height_px, chip_px, overlap_px), _count(width_px, chip_px, overlap_px)


def chip_windows(width_px: int, height_px: int, chip_px: int, overlap_px: int) -> list[ChipWindow]:
    """Windows of `chip_px` every `chip_px - overlap_px` pixels, row-major, clipped to the raster.

    Every pixel is in at least one window; neighbours overlap by exactly `overlap_px` unless
    clipping at the right or bottom edge shortens the second one; edge windows are smaller.
    """
    rows, cols = grid_shape(width_px, height_px, chip_px, overlap_px)
    stride = chip_px - overlap_px
    windows = []
    for row in range(rows):
        y = row * stride
        for col in range(cols):
            x = col * stride
            windows.append(
                ChipWindow(row, col, x, y, min(chip_px, width_px - x), min(chip_px, height_px - y))
            )
    return windows


def _check(width_px: int, height_px: int, chip_px: int, overlap_px: int) -> None:
    if width_px < 1 or height_px < 1:
        raise ValueError(f"raster of {width_px}x{height_px} px: both sides must be >= 1 px")
    if chip_px < 1 or not 0 <= overlap_px < chip_px:
        raise ValueError(
            f"chip {chip_px} px with overlap {overlap_px} px: need chip >= 1 and "
            "0 <= overlap < chip"
        )


def valid_fraction(valid: np.ndarray) -> float:
    """Fraction of True in a boolean mask (0.0 for an empty mask)."""
    return float(valid.mean()) if valid.size else 0.0


def densified_window_ring(
    window: ChipWindow, transform: Transform, points_per_edge: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """The window's outline in raster-CRS coordinates, `points_per_edge` segments per side.

    Counter-clockwise in a north-up raster (top-left, bottom-left, bottom-right, top-right),
    not closed. Densified because straight edges in the raster CRS are curves in lon/lat.
    """
    a, b, c, d, e, f = transform
    steps = np.arange(points_per_edge) / points_per_edge
    x0, y0 = window.x_px, window.y_px
    x1, y1 = x0 + window.width_px, y0 + window.height_px
    cols = np.concatenate(
        [
            np.full_like(steps, x0),
            x0 + steps * (x1 - x0),
            np.full_like(steps, x1),
            x1 - steps * (x1 - x0),
        ]
    )
    rows = np.concatenate(
        [
            y0 + steps * (y1 - y0),
            np.full_like(steps, y1),
            y1 - steps * (y1 - y0),
            np.full_like(steps, y0),
        ]
    )
    return a * cols + b * rows + c, d * cols + e * rows + f


def window_footprint(
    window: ChipWindow, transform: Transform, to_lonlat: ToLonLat, points_per_edge: int = 8
) -> list[tuple[float, float]]:
    """The window's densified outline in EPSG:4326 as a closed lon/lat ring."""
    xs, ys = densified_window_ring(window, transform, points_per_edge)
    lons, lats = to_lonlat(xs, ys)
    if not (np.isfinite(lons).all() and np.isfinite(lats).all()):
        raise ValueError(f"chip window {window}: its outline has no finite lon/lat")
    ring = [(float(x), float(y)) for x, y in zip(lons, lats, strict=True)]
    ring.append(ring[0])
    return ring


def ring_is_valid(ring: Sequence[Sequence[float]]) -> bool:
    """A GeoJSON linear ring: >= 4 finite positions, closed, non-zero area, lon/lat in range."""
    try:
        points = np.asarray(ring, dtype=float)
    except (TypeError, ValueError):
        return False
    if points.ndim != 2 or points.shape[0] < 4 or points.shape[1] < 2:
        return False
    xs, ys = points[:, 0], points[:, 1]
    if not (np.isfinite(points).all() and (abs(xs) <= 180).all() and (abs(ys) <= 90).all()):
        return False
    if not np.array_equal(points[0, :2], points[-1, :2]):
        return False
    area = 0.5 * float(np.sum(xs[:-1] * ys[1:] - xs[1:] * ys[:-1]))
    return area != 0.0
