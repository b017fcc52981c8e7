from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geomelt.workers.radiometry import (
    Radiometry,
    choose_radiometry,
    mean_brightness,
    to_uint8_rgb,
)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("uint8", Radiometry.UINT8),
        ("uint16", Radiometry.REFLECTANCE),
        ("int16", Radiometry.REFLECTANCE),
        ("float32", Radiometry.FLOAT),
    ],
)
def test_radiometry_follows_the_data_type(dtype: str, expected: Radiometry) -> None:
    assert choose_radiometry(dtype) is expected


def test_complex_data_is_refused() -> None:
    with pytest.raises(ValueError, match="complex64"):
        choose_radiometry("complex64")


@given(
    arrays(np.float32, (3, 5, 7), elements=st.floats(-1e5, 1e5, width=32) | st.just(np.nan)),
    st.sampled_from(list(Radiometry)),
)
@settings(max_examples=150, deadline=None)
def test_output_is_uint8_rgb_with_nodata_black(bands: np.ndarray, kind: Radiometry) -> None:
    pixels, valid = to_uint8_rgb(bands, kind)
    assert pixels.dtype == np.uint8
    assert pixels.shape == (5, 7, 3)
    assert (valid == np.isfinite(bands).all(axis=0)).all()
    assert (pixels[~valid] == 0).all()


@given(st.floats(0, 20000), st.floats(0, 20000))
def test_reflectance_mapping_is_monotonic(a: float, b: float) -> None:
    low, high = sorted((a, b))
    bands = np.array([low, high], np.float32).reshape(1, 1, 2)
    pixels, _ = to_uint8_rgb(bands, Radiometry.REFLECTANCE)
    assert pixels[0, 0, 0] <= pixels[0, 1, 0]


def test_known_values() -> None:
    reflectance = np.full((3, 1, 1), 1500, np.float32)  # half of the white point
    assert to_uint8_rgb(reflectance, Radiometry.REFLECTANCE)[0][0, 0].tolist() == [128] * 3
    assert to_uint8_rgb(np.full((3, 1, 1), 0.3, np.float32), Radiometry.FLOAT)[0].max() == 255
    grey, valid = to_uint8_rgb(np.array([[[10.0, np.nan]]], np.float32), Radiometry.UINT8)
    assert grey[0, 0].tolist() == [10, 10, 10]
    assert valid.tolist() == [[True, False]]
    assert mean_brightness(grey, valid) == 10.0
    assert mean_brightness(grey, np.zeros_like(valid)) is None
    with pytest.raises(ValueError, match="shape"):
        to_uint8_rgb(np.zeros((2, 3, 3), np.float32), Radiometry.UINT8)
