"""GeoMELT: the BEiT-3-style multiway encoder that captions images and embeds images and text."""

from .api import RANDOM_MODELS, GeoMelt, ZeroShotResult, load
from .checkpoint import (
    LoadReport,
    export_official,
    load_official,
    read_checkpoint,
    save_checkpoint,
)
from .config import GeoMeltConfig, TextConfig, TokenizerSpec, VisionConfig
from .errors import CheckpointError, ConfigError, ModelError
from .factory import create_model, get_config, list_presets
from .image import preprocess_images
from .lora import LoraSettings, apply_lora, merge_lora
from .metrics import retrieval_metrics
from .network import GeoMeltModel
from .presets import PRESETS
from .tokenizer import load_tokenizer

__all__ = [
    "PRESETS",
    "RANDOM_MODELS",
    "CheckpointError",
    "ConfigError",
    "GeoMelt",
    "GeoMeltConfig",
    "GeoMeltModel",
    "LoadReport",
    "LoraSettings",
    "ModelError",
    "TextConfig",
    "TokenizerSpec",
    "VisionConfig",
    "ZeroShotResult",
    "apply_lora",
    "create_model",
    "export_official",
    "get_config",
    "list_presets",
    "load",
    "load_official",
    "load_tokenizer",
    "merge_lora",
    "preprocess_images",
    "read_checkpoint",
    "retrieval_metrics",
    "save_checkpoint",
]
