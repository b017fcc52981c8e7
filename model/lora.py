"""LoRA adapters per expert on the attention projections via peft (spec §3.5)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from .errors import ConfigError
from .network import GeoMeltModel

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel

# peft (and through it transformers) is imported inside the functions: it costs seconds at
# import time and only LoRA users need it.

__all__ = ["LoraSettings", "apply_lora", "load_lora", "lora_target_regex", "merge_lora"]

EXPERTS = {"both": "(A|B)", "vision": "A", "language": "B"}
HEAD_NAMES = ("vision_head", "language_head", "logit_scale", "mlm_head")


@dataclass(frozen=True)
class LoraSettings:
    """r, α, dropout; which experts; FFN too; whether heads and LayerNorms stay trainable."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    experts: str = "both"
    include_ffn: bool = False
    train_heads: bool = True
    train_layernorms: bool = True

    def __post_init__(self) -> None:
        if self.experts not in EXPERTS:
            raise ConfigError(f"LoRA experts {self.experts!r}: use one of {', '.join(EXPERTS)}")
        if self.r < 1:
            raise ConfigError(f"LoRA rank r={self.r}: must be >= 1")


def lora_target_regex(settings: LoraSettings) -> str:
    expert = EXPERTS[settings.experts]
    pattern = rf".*self_attn\.(q|k|v|out)_proj\.{expert}"
    if settings.include_ffn:
        pattern = rf"({pattern}|.*ffn\.{expert}\.fc(1|2))"
    return pattern + "$"


def _peft_config(settings: LoraSettings) -> LoraConfig:
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        bias="none",
        target_modules=lora_target_regex(settings),
    )


def _unfreeze_extras(peft_model: PeftModel, settings: LoraSettings) -> None:
    for module in peft_model.modules():
        if settings.train_layernorms and isinstance(module, nn.LayerNorm):
            module.requires_grad_(True)
    if settings.train_heads:
        for name, param in peft_model.named_parameters():
            if name.split(".")[-2] in HEAD_NAMES or name.endswith("logit_scale"):
                param.requires_grad_(True)


def apply_lora(model: GeoMeltModel, settings: LoraSettings) -> PeftModel:
    """Wrap in place; only LoRA matrices (and heads/LayerNorms if asked) stay trainable."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, _peft_config(settings))
    _unfreeze_extras(peft_model, settings)
    return peft_model


def merge_lora(peft_model: PeftModel) -> GeoMeltModel:
    """Fold adapters into the weights; the result has exactly the §2.5 key set."""
    merged = peft_model.merge_and_unload()
    if not isinstance(merged, GeoMeltModel):
        raise ConfigError("merge_lora expects a peft model wrapping a GeoMeltModel")
    return merged


def load_lora(model: GeoMeltModel, adapter_dir: Path) -> PeftModel:
    """Attach adapters saved with `peft_model.save_pretrained(adapter_dir)`."""
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ConfigError(
            f"{adapter_dir}: no adapter_config.json; pass a folder written by save_pretrained"
        )
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir))
