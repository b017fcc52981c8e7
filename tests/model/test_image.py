"""T15 image pipeline: normalisation, bicubic resize without crop, D4 bijections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomelt.model import ConfigError, preprocess_images
from geomelt.model.image import d4_inverse, d4_transform


def test_normalisation_maps_0_and_255() -> None:
    images = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    images[..., 1] = 255
    x = preprocess_images(images, 32)
    assert x.shape == (1, 3, 32, 32)
    assert x[:, 0].eq(-1.0).all()
    assert x[:, 1].eq(1.0).all()


def test_resize_without_crop() -> None:
    images = torch.zeros(2, 3, 256, 256, dtype=torch.uint8)
    images[:, :, :, :128] = 255  # left half white
    x = preprocess_images(images, 224)
    assert x.shape == (2, 3, 224, 224)
    # No crop: the edge columns keep their colours and the boundary stays at the middle.
    torch.testing.assert_close(x[..., 0], torch.ones(2, 3, 224))
    torch.testing.assert_close(x[..., -1], -torch.ones(2, 3, 224))
    assert x[0, 0, 0, 100] > 0.99
    assert x[0, 0, 0, 124] < -0.99


def test_layouts_and_types_agree() -> None:
    gen = np.random.default_rng(0)
    nhwc = gen.integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    nchw = torch.from_numpy(nhwc).permute(0, 3, 1, 2).contiguous()
    a = preprocess_images(nhwc, 32)
    torch.testing.assert_close(preprocess_images(nchw, 32), a)
    torch.testing.assert_close(preprocess_images(nhwc[0], 32), a[:1])


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((1, 8, 8, 3), dtype=np.float32), "dtype"),
        (np.zeros((1, 8, 8, 4), dtype=np.uint8), "no axis of size 3"),
        ([[1, 2]], "type list"),
    ],
)
def test_bad_images_rejected(bad: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        preprocess_images(bad, 32)


@pytest.mark.parametrize("k", range(8))
def test_d4_is_a_bijection(k: int) -> None:
    x = torch.arange(2 * 3 * 5 * 5).reshape(2, 3, 5, 5)
    y = d4_transform(x, k)
    assert torch.equal(d4_inverse(y, k), x)
    assert torch.equal(torch.sort(y.flatten()).values, torch.sort(x.flatten()).values)
    if k:
        assert not torch.equal(y, x)


def test_d4_elements_distinct() -> None:
    x = torch.arange(16).reshape(4, 4)
    images = {tuple(d4_transform(x, k).flatten().tolist()) for k in range(8)}
    assert len(images) == 8
    with pytest.raises(ConfigError):
        d4_transform(x, 8)
