from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from geomelt.workers.grid import (
    GSD_LEVELS_M,
    GroundGrid,
    chip_windows,
    grid_shape,
    native_gsd_m,
    parse_cell_id,
    ring_is_valid,
    target_gsd,
    utm_epsg,
    valid_fraction,
    window_footprint,
)

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


# --- The ground grid ---------------------------------------------------------------------------


@st.composite
def ground_grids(draw: st.DrawFn) -> GroundGrid:
    zone = draw(st.integers(min_value=1, max_value=60))
    south = draw(st.booleans())
    chip = draw(st.integers(min_value=8, max_value=512))
    overlap = draw(st.integers(min_value=0, max_value=chip // 2))
    gsd = draw(st.sampled_from(GSD_LEVELS_M))
    return GroundGrid((32700 if south else 32600) + zone, gsd, chip, chip - overlap)


@given(
    ground_grids(),
    st.floats(min_value=150_000, max_value=850_000),
    st.floats(min_value=100_000, max_value=9_900_000),
    st.floats(min_value=0.01, max_value=40),
    st.floats(min_value=0.01, max_value=40),
)
@settings(max_examples=200, deadline=None)
def test_a_ground_area_covers_the_outline_with_whole_cells_of_the_fixed_grid(
    grid: GroundGrid, x0: float, y0: float, width_strides: float, height_strides: float
) -> None:
    # Extents in strides, not metres: 20 km at 0.3 m with a 4-px stride is 2.8e8 windows, which
    # one unlucky draw turned into a 6 GB, many-minute example.
    width_m = width_strides * grid.stride_px * grid.gsd_m
    height_m = height_strides * grid.stride_px * grid.gsd_m
    xs = np.array([x0, x0 + width_m, x0 + width_m, x0])
    ys = np.array([y0, y0, y0 + height_m, y0 + height_m])
    area = grid.area(xs, ys)
    a, _, c, _, e, f = area.transform
    # The area is whole cells of the zone raster: its origin sits on the fixed lattice.
    assert (a, e) == (grid.gsd_m, -grid.gsd_m)
    stride_m = grid.stride_px * grid.gsd_m
    assert c == pytest.approx(area.col0 * stride_m)
    assert f == pytest.approx(10_000_000 - area.row0 * stride_m)
    # It covers the outline, and no whole row or column of cells lies outside it.
    assert c <= x0 + 1e-6
    assert c + area.width_px * grid.gsd_m >= x0 + width_m - 1e-6
    assert f >= y0 + height_m - 1e-6
    assert f - area.height_px * grid.gsd_m <= y0 + 1e-6
    assert c + stride_m * (area.cols - 1) < x0 + width_m
    windows = area.windows()
    assert len(windows) == area.rows * area.cols
    for window in windows:
        assert (window.width_px, window.height_px) == (grid.chip_px, grid.chip_px)
        # Every window is the cell of its (global) row and column, wherever the scene starts.
        gx, gy, _, _ = grid.cell_window(window.row, window.col)
        assert (gx - area.col0 * grid.stride_px, gy - area.row0 * grid.stride_px) == (
            window.x_px,
            window.y_px,
        )
        assert window.x_px + window.width_px <= area.width_px
        assert window.y_px + window.height_px <= area.height_px


@given(ground_grids(), st.integers(0, 10**6), st.integers(0, 10**6))
@settings(max_examples=100, deadline=None)
def test_cell_ids_round_trip(grid: GroundGrid, row: int, col: int) -> None:
    assert parse_cell_id(grid.cell_id(row, col)) == (grid, row, col)


def test_two_scenes_of_one_place_in_different_crss_get_the_same_cells() -> None:
    # The same 3 x 2 km of North Dakota, once in EPSG:3857 and once in NAD83 / UTM 14N.
    west, south, east, north = -97.40, 47.00, -97.36, 47.02
    lons = np.array([west, east, east, west])
    lats = np.array([south, south, north, north])
    ids = []
    for epsg in (3857, 26914):
        native = Transformer.from_crs(4326, epsg, always_xy=True).transform(lons, lats)
        # What the pipeline does: the zone of the centre, the outline reprojected into it.
        zone = utm_epsg(
            *Transformer.from_crs(epsg, 4326, always_xy=True).transform(
                float(np.mean(native[0])), float(np.mean(native[1]))
            )
        )
        xs, ys = Transformer.from_crs(epsg, zone, always_xy=True).transform(*native)
        grid = GroundGrid(zone, target_gsd(5.0), 224, 224)
        ids.append({grid.cell_id(w.row, w.col) for w in grid.area(xs, ys).windows()})
    assert ids[0] == ids[1]
    assert all(cell.startswith("utm14n_5m_224px_") for cell in ids[0])


@pytest.mark.parametrize(
    ("native", "level"),
    [(0.15, 0.3), (0.29994, 0.3), (0.353, 0.3), (0.5, 0.5), (5.0, 5.0), (28.5, 30.0), (90, 30)],
)
def test_target_gsd_stays_in_the_range_the_model_was_trained_on(
    native: float, level: float
) -> None:
    assert target_gsd(native) == level


def test_target_gsd_refuses_what_it_would_have_to_invent() -> None:
    with pytest.raises(ValueError, match=r"GSD 300 m .* 4x coarser .*\(30 m"):
        target_gsd(300.0)
    assert target_gsd(300.0, max_upsample=10) == 30.0


def test_native_gsd_is_measured_on_the_ground() -> None:
    # A 5 m pixel at 47 N spans 7.33 m of EPSG:3857; in UTM it is 5 m again.
    lon, lat = -97.38, 47.01
    to_3857 = Transformer.from_crs(4326, 3857, always_xy=True)
    x0, y0 = to_3857.transform(lon, lat)
    step = 5.0 / np.cos(np.radians(lat))
    xs = np.array([x0, x0 + 100 * step, x0 + 100 * step, x0])
    ys = np.array([y0, y0, y0 + 80 * step, y0 + 80 * step])
    utm = utm_epsg(lon, lat)
    ux, uy = Transformer.from_crs(3857, utm, always_xy=True).transform(xs, ys)
    assert native_gsd_m(np.asarray(ux), np.asarray(uy), 100, 80) == pytest.approx(5.0, rel=0.01)


def test_utm_zones_and_bad_grids() -> None:
    assert utm_epsg(-97.4, 47.0) == 32614
    assert utm_epsg(-74.5, -8.4) == 32718
    assert utm_epsg(180.0, 1.0) == 32601
    with pytest.raises(ValueError, match="UTM covers"):
        utm_epsg(10.0, 86.0)
    with pytest.raises(ValueError, match="UTM zone"):
        GroundGrid(3857, 5.0, 224, 224)
    assert parse_cell_id("tile-1_2_3") is None
