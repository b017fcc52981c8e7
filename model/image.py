"""Image pipeline: uint8 batches -> normalised pixels (spec §3.7 eval) and D4 augmentations."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError

__all__ = ["d4_inverse", "d4_transform", "preprocess_images", "to_nchw_uint8"]

# BEiT-3 normalises every channel with mean = std = 0.5, mapping [0, 255] to [−1, 1].
MEAN = 0.5
STD = 0.5


def to_nchw_uint8(images: Any) -> torch.Tensor:
    """uint8 (B, H, W, 3), (B, 3, H, W) or one (H, W, 3) image, numpy or torch -> (B, 3, H, W)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise ConfigError(
            f"images of type {type(images).__name__}: pass a uint8 numpy array or torch tensor"
        )
    if images.dtype != torch.uint8:
        raise ConfigError(f"images of dtype {images.dtype}: pass uint8 pixels in [0, 255]")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4:
        raise ConfigError(
            f"images of shape {tuple(images.shape)}: expected (B, H, W, 3) or (B, 3, H, W)"
        )
    batch: torch.Tensor = images
    if batch.size(1) == 3:
        return batch
    if batch.size(-1) == 3:
        return batch.permute(0, 3, 1, 2)
    raise ConfigError(
        f"images of shape {tuple(images.shape)}: no axis of size 3; pass RGB (B, H, W, 3)"
    )


def preprocess_images(
    images: Any,
    img_size: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Resize to (img_size, img_size) bicubic without crop, then (x/255 − 0.5)/0.5."""
    x = to_nchw_uint8(images)
    if device is not None:
        x = x.to(device)
    x = x.float()
    if tuple(x.shape[-2:]) != (img_size, img_size):
        # Antialiased bicubic like PIL's resize; clamp keeps the uint8 range PIL produces.
        x = F.interpolate(
            x, size=(img_size, img_size), mode="bicubic", align_corners=False, antialias=True
        ).clamp_(0.0, 255.0)
    return ((x / 255.0 - MEAN) / STD).to(dtype)


def d4_transform(x: torch.Tensor, k: int) -> torch.Tensor:
    """Element k ∈ 0..7 of D4 on the last two axes: rot90^(k%4), then a flip if k ≥ 4."""
    if not 0 <= k < 8:
        raise ConfigError(f"D4 element {k}: must be in 0..7")
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


def d4_inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    if not 0 <= k < 8:
        raise ConfigError(f"D4 element {k}: must be in 0..7")
    y = torch.flip(x, dims=(-1,)) if k >= 4 else x
    return torch.rot90(y, -(k % 4), dims=(-2, -1))
