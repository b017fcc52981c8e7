"""Build models from preset names or configs."""

from __future__ import annotations

import torch

from .config import GeoMeltConfig
from .errors import ConfigError
from .network import GeoMeltModel
from .presets import PRESETS

__all__ = ["create_model", "get_config", "list_presets"]


def list_presets() -> list[str]:
    return sorted(PRESETS)


def get_config(
    name: str, *, img_size: int | None = None, task_heads: tuple[str, ...] | None = None
) -> GeoMeltConfig:
    """The preset `name`, optionally at another image size or with a subset of heads."""
    if name not in PRESETS:
        raise ConfigError(
            f"preset {name!r} is unknown; available presets: {', '.join(list_presets())}"
        )
    config = PRESETS[name]
    if img_size is not None:
        config = config.with_img_size(img_size)
    if task_heads is not None:
        config = config.replace(task_heads=tuple(task_heads))
    return config


def create_model(
    name_or_config: str | GeoMeltConfig,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    seed: int | None = None,
) -> GeoMeltModel:
    """A freshly initialised model; device="meta" builds shapes only (instant, no memory)."""
    config = (
        name_or_config if isinstance(name_or_config, GeoMeltConfig) else get_config(name_or_config)
    )
    if seed is not None:
        torch.manual_seed(seed)
    # Shapes first on meta, then one initialisation pass: skips PyTorch's default init that
    # reset_parameters would overwrite anyway (halves build time).
    with torch.device("meta"):
        model = GeoMeltModel(config)
    if torch.device(device).type != "meta":
        model = model.to_empty(device=device)
        model.tie_weights()  # to_empty gives each module its own new tensors
        model.reset_parameters()
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model.eval()
