from __future__ import annotations

import numpy as np
import pytest
from geomelt.workers.grid import (
    chip_windows,
    grid_shape,
    ring_is_valid,
    valid_fraction,
    window_footprint,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

sizes = st.integers(min_value=1, max_value=700)


@st.composite
def grids(draw: st.DrawFn) -> tuple[int, int, int, int]:
    chip = draw(st.integers(min_value=1, max_value=300))
    overlap = draw(st.integers(min_value=0, max_value=chip - 1))
    return draw(sizes), draw(sizes), chip, overlap


@given(grids())
@settings(max_examples=200, deadline=None)
def test_windows_cover_the_raster_and_stay_in_bounds(grid: tuple[int, int, int, int]) -> None:
    width, height, chip, overlap = grid
    covered = np.zeros((height, width), bool)
    for w in chip_windows(width, height, chip, overlap):
        assert 0 <= w.x_px < width
        assert 0 <= w.y_px < height
        assert 1 <= w.width_px <= chip
        assert 1 <= w.height_px <= chip
        assert w.x_px + w.width_px <= width
        assert w.y_px + w.height_px <= height
        covered[w.y_px : w.y_px + w.height_px, w.x_px : w.x_px + w.width_px] = True
    assert covered.all()


@given(grids())
@settings(max_examples=200, deadline=None)
def test_neighbours_overlap_exactly(grid: tuple[int, int, int, int]) -> None:
    width, height, chip, overlap = grid
    rows, cols = grid_shape(width, height, chip, overlap)
    windows = {(w.row, w.col): w for w in chip_windows(width, height, chip, overlap)}
    assert len(windows) == rows * cols
    for (row, col), w in windows.items():
        right = windows.get((row, col + 1))
        if right is not None:
            assert right.x_px - w.x_px == chip - overlap
            # Full-width neighbours share exactly `overlap` columns.
            if w.width_px == chip:
                assert w.x_px + w.width_px - right.x_px == overlap
        below = windows.get((row + 1, col))
        if below is not None:
            assert below.y_px - w.y_px == chip - overlap


def test_a_raster_smaller_than_a_chip_is_one_clipped_window() -> None:
    [window] = chip_windows(24, 42, 224, 32)
    assert (window.row, window.col, window.width_px, window.height_px) == (0, 0, 24, 42)


@pytest.mark.parametrize(("chip", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_bad_chip_settings_are_refused(chip: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="overlap"):
        chip_windows(100, 100, chip, overlap)


@given(
    st.floats(min_value=-170, max_value=170),
    st.floats(min_value=-75, max_value=75),
    st.integers(min_value=1, max_value=500),
    st.integers(min_value=1, max_value=500),
)
@settings(max_examples=100, deadline=None)
def test_footprint_round_trips_through_utm(lon: float, lat: float, w: int, h: int) -> None:
    zone = int((lon + 180) // 6) + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    forward = Transformer.from_crs(4326, epsg, always_xy=True)
    x0, y0 = forward.transform(lon, lat)
    transform = (10.0, 0.0, x0, 0.0, -10.0, y0)  # 10 m pixels, north up
    [window] = chip_windows(w, h, 512, 0)
    ring = window_footprint(
        window, transform, Transformer.from_crs(epsg, 4326, always_xy=True).transform
    )
    assert ring[0] == ring[-1]
    assert len(ring) == 4 * 8 + 1
    assert ring_is_valid(ring)
    # The first vertex is the window's top-left corner: back where we started.
    assert ring[0][0] == pytest.approx(lon, abs=1e-7)
    assert ring[0][1] == pytest.approx(lat, abs=1e-7)
    back_x, back_y = forward.transform(*np.array(ring).T)
    xs, ys = np.asarray(back_x), np.asarray(back_y)
    assert xs.min() == pytest.approx(x0, abs=1e-3)
    assert xs.max() == pytest.approx(x0 + 10 * w, abs=1e-3)
    assert ys.max() == pytest.approx(y0, abs=1e-3)
    assert ys.min() == pytest.approx(y0 - 10 * h, abs=1e-3)


def test_valid_fraction_and_ring_checks() -> None:
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    assert valid_fraction(mask) == 0.5
    assert valid_fraction(np.zeros((0, 0), bool)) == 0.0
    assert not ring_is_valid([[0, 0], [1, 1]])
    assert not ring_is_valid([[0, 0], [1, 0], [1, 1], [0, 2]])  # not closed
    assert not ring_is_valid([[0, 0], [1, 1], [2, 2], [0, 0]])  # no area
    assert not ring_is_valid([[0, 0], [200, 0], [1, 1], [0, 0]])  # out of range
    assert ring_is_valid([[0, 0], [1, 0], [1, 1], [0, 0]])
