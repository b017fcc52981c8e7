"""Chip grids and footprints: pure functions of raster sizes, affine transforms and arrays.

Conventions: pixel windows are (x offset, y offset, width, height) in the raster's own grid; an
affine transform is GDAL order (a, b, c, d, e, f): x = a*col + b*row + c, y = d*col + e*row + f.

The ground grid (docs/GRID.md): chips are cut on a grid fixed to the ground, not to the scene, so
that every acquisition of a place yields chips of the same cells, whatever its CRS. For a target
GSD g (m), chip size c px and stride s px (c minus the overlap), the grid of UTM zone Z is the
north-up raster of EPSG:326ZZ (north) or 327ZZ (south) with pixels of g m and its origin at
easting 0, northing 10 000 000 m; cell (row, col) is its pixel window (col*s, row*s, c, c). A
scene is resampled onto the grid of the zone of its centre, at the GSD level nearest its own
(`target_gsd`), so rows and columns count from that fixed origin and never from the scene.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "GSD_LEVELS_M",
    "ChipWindow",
    "GridArea",
    "GroundGrid",
    "Transform",
    "chip_windows",
    "densified_window_ring",
    "grid_shape",
    "native_gsd_m",
    "parse_cell_id",
    "target_gsd",
    "utm_epsg",
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


# GSD levels chips are resampled to: UCM's 0.3 m (the finest the model was trained on), the 1-2-5
# series through AID/RSSCN7's 0.5-8 m (at most ~20 m/px once their scenes are resized to the
# model's input), and Landsat's 30 m. A scene goes to the level nearest its own GSD (in log
# terms), so same-sensor acquisitions share a level and thus their cells.
GSD_LEVELS_M = (0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
# Upsampling a scene further than this (e.g. 300 m to 30 m) invents detail: refused.
MAX_UPSAMPLE = 4.0
# UTM northings run 0..10 000 000 m (the southern false northing): rows count down from here.
GRID_ORIGIN_NORTHING_M = 10_000_000.0
# Tolerance of cell-edge arithmetic: a scene edge within a micrometre of a cell edge touches it.
_EDGE_TOLERANCE_M = 1e-6


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the plain 6-degree UTM zone holding (lon, lat), WGS 84 (no Norway/Svalbard
    exceptions: the zone is a pure function of the position)."""
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 84.0:
        raise ValueError(
            f"position ({lon}, {lat}): UTM covers latitudes -84..84 only; polar scenes have no "
            "ground grid"
        )
    zone = min(60, max(1, math.floor(((lon + 180.0) % 360.0) / 6.0) + 1))
    return (32600 if lat >= 0 else 32700) + zone


def target_gsd(
    native_gsd_m: float,
    *,
    levels_m: Sequence[float] = GSD_LEVELS_M,
    max_upsample: float = MAX_UPSAMPLE,
) -> float:
    """The GSD level a scene of `native_gsd_m` is chipped at.

    Finer than the finest level: downsampled to it (0.15 m -> 0.3 m). Coarser than the coarsest:
    upsampled to it, at most `max_upsample` times (90 m -> 30 m); beyond that, ValueError.
    Otherwise the level nearest in log terms (5 m -> 5 m, 0.353 m -> 0.3 m, 28.5 m -> 30 m).
    """
    if not (math.isfinite(native_gsd_m) and native_gsd_m > 0):
        raise ValueError(f"native GSD {native_gsd_m} m: must be a positive number")
    ordered = sorted(levels_m)
    if native_gsd_m > ordered[-1] * max_upsample:
        raise ValueError(
            f"GSD {native_gsd_m:g} m is more than {max_upsample:g}x coarser than the coarsest "
            f"level the model reads ({ordered[-1]:g} m; it was trained on 0.3-30 m imagery)"
        )
    return min(ordered, key=lambda level: abs(math.log(native_gsd_m / level)))


def native_gsd_m(xs: np.ndarray, ys: np.ndarray, width_px: int, height_px: int) -> float:
    """Ground sample distance of a raster from its outline in a metric CRS (ring of xs, ys):
    the side of a pixel of equal area. Exact for any input CRS once reprojected to UTM (a
    pixel of EPSG:3857 at 47 N measures 7.3 "m" but covers 5 m)."""
    area = 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))
    return math.sqrt(area / (width_px * height_px))


def _gsd_label(gsd_m: float) -> str:
    return f"{gsd_m:g}m"


@dataclass(frozen=True)
class GroundGrid:
    """The grid of one UTM zone, GSD, chip size and stride (see the module docstring)."""

    epsg: int
    gsd_m: float
    chip_px: int
    stride_px: int

    def __post_init__(self) -> None:
        if not (32601 <= self.epsg <= 32660 or 32701 <= self.epsg <= 32760):
            raise ValueError(f"grid EPSG:{self.epsg}: must be a WGS 84 UTM zone (326xx, 327xx)")
        if not (self.gsd_m > 0 and math.isfinite(self.gsd_m)):
            raise ValueError(f"grid GSD {self.gsd_m} m: must be a positive number")
        _check(1, 1, self.chip_px, self.chip_px - self.stride_px)

    @property
    def transform(self) -> Transform:
        """The zone raster's transform: pixel (0, 0) at easting 0, northing 10 000 000."""
        return (self.gsd_m, 0.0, 0.0, 0.0, -self.gsd_m, GRID_ORIGIN_NORTHING_M)

    @property
    def prefix(self) -> str:
        zone = f"utm{self.epsg % 100:02d}{'s' if self.epsg >= 32700 else 'n'}"
        stride = "" if self.stride_px == self.chip_px else f"s{self.stride_px}"
        return f"{zone}_{_gsd_label(self.gsd_m)}_{self.chip_px}px{stride}"

    def cell_id(self, row: int, col: int) -> str:
        """`utm14n_5m_224px_1234_567`: zone, GSD, chip size (and stride), row, column."""
        return f"{self.prefix}_{row}_{col}"

    def cell_window(self, row: int, col: int) -> tuple[int, int, int, int]:
        """The cell's pixel window in the zone raster (x, y, width, height)."""
        return col * self.stride_px, row * self.stride_px, self.chip_px, self.chip_px

    def area(self, xs: np.ndarray, ys: np.ndarray) -> GridArea:
        """The cells touching the outline (xs, ys in this grid's CRS), as one raster area."""
        stride_m, chip_m = self.stride_px * self.gsd_m, self.chip_px * self.gsd_m
        downs = GRID_ORIGIN_NORTHING_M - np.asarray(ys, dtype=float)
        col0, col1 = _cell_range(float(np.min(xs)), float(np.max(xs)), stride_m, chip_m)
        row0, row1 = _cell_range(float(downs.min()), float(downs.max()), stride_m, chip_m)
        return GridArea(self, row0, col0, row1 - row0 + 1, col1 - col0 + 1)


def _cell_range(low: float, high: float, stride_m: float, chip_m: float) -> tuple[int, int]:
    # Cell k spans [k*stride, k*stride + chip): the cells that reach past `low` and start
    # before `high`; at least one for a degenerate outline.
    first = math.floor((low + _EDGE_TOLERANCE_M - chip_m) / stride_m) + 1
    last = math.ceil((high - _EDGE_TOLERANCE_M) / stride_m) - 1
    return first, max(first, last)


@dataclass(frozen=True)
class GridArea:
    """A block of whole cells of a ground grid, read as one raster (north-up, grid CRS)."""

    grid: GroundGrid
    row0: int
    col0: int
    rows: int
    cols: int

    @property
    def width_px(self) -> int:
        return (self.cols - 1) * self.grid.stride_px + self.grid.chip_px

    @property
    def height_px(self) -> int:
        return (self.rows - 1) * self.grid.stride_px + self.grid.chip_px

    @property
    def transform(self) -> Transform:
        gsd, stride = self.grid.gsd_m, self.grid.stride_px
        return (
            gsd,
            0.0,
            self.col0 * stride * gsd,
            0.0,
            -gsd,
            GRID_ORIGIN_NORTHING_M - self.row0 * stride * gsd,
        )

    def windows(self) -> list[ChipWindow]:
        """One full chip window per cell, row-major; row and col are the grid's (global)."""
        stride, chip = self.grid.stride_px, self.grid.chip_px
        return [
            ChipWindow(self.row0 + r, self.col0 + c, c * stride, r * stride, chip, chip)
            for r in range(self.rows)
            for c in range(self.cols)
        ]


_CELL_ID = re.compile(r"^utm(\d{2})([ns])_([0-9.e+-]+)m_(\d+)px(?:s(\d+))?_(\d+)_(-?\d+)$")


def parse_cell_id(cell_id: str) -> tuple[GroundGrid, int, int] | None:
    """(grid, row, col) of a cell id, or None when it is not one."""
    match = _CELL_ID.match(cell_id)
    if match is None:
        return None
    zone, hemisphere, gsd, chip, stride, row, col = match.groups()
    try:
        grid = GroundGrid(
            (32700 if hemisphere == "s" else 32600) + int(zone),
            float(gsd),
            int(chip),
            int(stride) if stride else int(chip),
        )
    except ValueError:
        return None
    return grid, int(row), int(col)


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
