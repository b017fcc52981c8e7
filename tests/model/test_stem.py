"""The EfficientNet-Lite0 stem computes TF 'SAME' convolutions exactly (spec §8.1)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geomelt.model.stem import EfficientNetLite0Stem, _same_pad


def same_padded_reference(stem: EfficientNetLite0Stem, pixels: torch.Tensor) -> torch.Tensor:
    """Every depthwise convolution through an explicit TF SAME pad, as the weights expect."""
    x = F.relu6(F.conv2d(_same_pad(pixels, 3, 2), stem.stem_w, stem.stem_b, stride=2))
    for i, (kernel, stride, expand, c_in, c_out) in enumerate(stem.specs):
        h = x
        if expand != 1:
            h = F.relu6(
                F.conv2d(h, getattr(stem, f"b{i}_expand_w"), getattr(stem, f"b{i}_expand_b"))
            )
        h = F.conv2d(
            _same_pad(h, kernel, stride),
            getattr(stem, f"b{i}_dw_w"),
            getattr(stem, f"b{i}_dw_b"),
            stride=stride,
            groups=h.size(1),
        )
        h = F.relu6(h)
        h = F.conv2d(h, getattr(stem, f"b{i}_project_w"), getattr(stem, f"b{i}_project_b"))
        x = x + h if stride == 1 and c_in == c_out else h
    return F.relu6(F.conv2d(x, stem.head_w, stem.head_b))


@pytest.mark.parametrize("size", [64, 96])
def test_stem_equals_explicit_same_padding(size: int) -> None:
    stem = EfficientNetLite0Stem()
    stem.load_pretrained()
    pixels = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size)) * 2 - 1
    with torch.no_grad():
        out, reference = stem(pixels), same_padded_reference(stem, pixels)
    assert out.shape == (2, 1280, size // 32, size // 32)
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)
