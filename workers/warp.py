"""A scene read on a ground-grid area: its pixels resampled, strip by strip, into the grid's UTM
CRS and GSD (workers/grid.py), with NaN wherever the scene has no data.

Built on `SceneRaster.read_rows` of the scene as read (assets, bands, masks and calibration stay
read.py's): each strip of grid rows reads the native rows under it (plus a margin for the
resampling kernel) and GDAL's warper resamples them. Memory is one strip of each.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject

from .grid import ChipWindow, GridArea, densified_window_ring
from .read import SceneRaster

__all__ = ["on_grid", "resampling_for"]

# Native rows read beyond the strip's outline on each side: the widest kernel GDAL uses for
# bilinear is 2 px; averaging covers its whole footprint, which the outline already bounds.
_MARGIN_ROWS = 2


def resampling_for(native_gsd_m: float, target_gsd_m: float) -> Resampling:
    """Averaging when the grid is coarser (no aliasing of fine detail), bilinear when finer."""
    return Resampling.average if target_gsd_m > native_gsd_m * 1.01 else Resampling.bilinear


def on_grid(native: SceneRaster, area: GridArea, resampling: Resampling) -> SceneRaster:
    """`native` resampled onto `area`: same assets, bands and radiometry, the area's CRS,
    transform and size; `record()` then describes the grid the chips' windows refer to."""
    to_native = Transformer.from_crs(area.grid.epsg, native.epsg, always_xy=True).transform
    native_inverse = ~Affine(*native.transform)
    src_crs, dst_crs = CRS.from_epsg(native.epsg), CRS.from_epsg(area.grid.epsg)

    def native_rows(y0: int, y1: int) -> tuple[int, int]:
        strip = ChipWindow(0, 0, 0, y0, area.width_px, y1 - y0)
        xs, ys = densified_window_ring(strip, area.transform, points_per_edge=16)
        nx, ny = to_native(xs, ys)
        _, rows = native_inverse * (np.asarray(nx), np.asarray(ny))
        rows = np.asarray(rows)[np.isfinite(rows)]
        if rows.size == 0:
            return 0, 0
        first = max(0, math.floor(float(rows.min())) - _MARGIN_ROWS)
        last = min(native.height_px, math.ceil(float(rows.max())) + _MARGIN_ROWS)
        return first, max(first, last)

    def read(y0: int, y1: int) -> np.ndarray:
        first, last = native_rows(y0, y1)
        if last == first:  # the strip lies beyond the scene: all nodata
            channels = native.read_rows(0, 1).shape[0]
            return np.full((channels, y1 - y0, area.width_px), np.nan, np.float32)
        source = native.read_rows(first, last)
        destination = np.full((source.shape[0], y1 - y0, area.width_px), np.nan, np.float32)
        a, b, c, d, e, f = area.transform
        reproject(
            source=source,
            destination=destination,
            src_transform=Affine(*native.transform) * Affine.translation(0, first),
            src_crs=src_crs,
            src_nodata=np.nan,
            dst_transform=Affine(a, b, c, d, e, f) * Affine.translation(0, y0),
            dst_crs=dst_crs,
            dst_nodata=np.nan,
            resampling=resampling,
        )
        return destination

    return dataclasses.replace(
        native,
        epsg=area.grid.epsg,
        transform=area.transform,
        width_px=area.width_px,
        height_px=area.height_px,
        geographic=False,
        _read=read,
    )
