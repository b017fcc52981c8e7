"""Frozen configuration records for the GeoMELT / BEiT-3 multiway encoder (spec §2.6, §5)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .stem import tuned_stem_parameters

__all__ = [
    "HEAD_NAMES",
    "GeoMeltConfig",
    "TextConfig",
    "TokenizerSpec",
    "VisionConfig",
]

HEAD_NAMES = ("retrieval", "caption")
STEM_KINDS = ("patch", "efficientnet-lite0")
HYBRID_STRIDE = 32
HYBRID_CHANNELS = 1280
TOKENIZER_KINDS = ("wordpiece", "xlmr")


@dataclass(frozen=True)
class TokenizerSpec:
    """Special ids and vocabulary sizes of one tokenizer (spec §5); stored in every checkpoint."""

    kind: str
    vocab_size_tok: int
    model_vocab: int
    bos_id: int
    eos_id: int
    pad_id: int
    mask_id: int
    unk_id: int
    rand_low: int
    rand_high: int
    sha256: str

    def __post_init__(self) -> None:
        if self.kind not in TOKENIZER_KINDS:
            raise ConfigError(
                f"tokenizer kind {self.kind!r} is unknown; use one of {', '.join(TOKENIZER_KINDS)}"
            )
        if not 0 <= self.rand_low <= self.rand_high < self.vocab_size_tok <= self.model_vocab:
            raise ConfigError(
                f"tokenizer {self.kind}: need 0 <= rand_low ({self.rand_low}) <= rand_high "
                f"({self.rand_high}) < vocab_size_tok ({self.vocab_size_tok}) <= model_vocab "
                f"({self.model_vocab}); fix the TokenizerSpec values"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerSpec:
        return cls(**data)


@dataclass(frozen=True)
class VisionConfig:
    """Image tower input: square images of img_size pixels cut into patch_size patches."""

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    # "patch": BEiT-3's strided conv. "efficientnet-lite0": frozen ImageNet trunk from its pip
    # package (not stored in checkpoints) + a 1×1 conv `proj` to D; patch_size must be 32.
    stem: str = "patch"
    # Hybrid stem only: first EfficientNet-Lite0 block (1-16) that trains and is stored with the
    # model, with every later block and the head conv; None keeps the whole trunk frozen.
    stem_tune_from: int | None = None

    def __post_init__(self) -> None:
        if self.stem not in STEM_KINDS:
            raise ConfigError(f"stem {self.stem!r} is unknown; use one of {', '.join(STEM_KINDS)}")
        if self.stem_tune_from is not None and self.stem == "patch":
            raise ConfigError(
                f"stem_tune_from {self.stem_tune_from} needs a hybrid stem (stem="
                "'efficientnet-lite0'); the patch stem trains whole"
            )
        if self.stem != "patch" and self.patch_size != HYBRID_STRIDE:
            raise ConfigError(
                f"stem {self.stem!r} has output stride {HYBRID_STRIDE}; set patch_size="
                f"{HYBRID_STRIDE} (got {self.patch_size})"
            )
        if self.img_size <= 0 or self.patch_size <= 0 or self.img_size % self.patch_size:
            raise ConfigError(
                f"img_size {self.img_size} with patch_size {self.patch_size}: img_size must be a "
                "positive multiple of patch_size (e.g. 224 or 384 with patch 16)"
            )

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """Patches plus the CLS token: the image part of a fused sequence (N+1)."""
        return self.num_patches + 1


@dataclass(frozen=True)
class TextConfig:
    """Text tower: model vocabulary rows, tokenizer kind, learned position table size."""

    vocab_size: int = 30522
    tokenizer: str = "wordpiece"
    max_positions: int = 1024

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZER_KINDS:
            raise ConfigError(
                f"tokenizer {self.tokenizer!r} is unknown; use one of {', '.join(TOKENIZER_KINDS)}"
            )
        if self.vocab_size <= 0 or self.max_positions <= 2:
            raise ConfigError(
                f"vocab_size {self.vocab_size} / max_positions {self.max_positions}: both must be "
                "positive and max_positions > 2 (two fairseq offset rows)"
            )


@dataclass(frozen=True)
class GeoMeltConfig:
    """One GeoMELT network: the BEiT-3 multiway backbone plus optional heads (spec §2)."""

    name: str
    embed_dim: int
    layers: int
    heads: int
    ffn_dim: int
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    task_heads: tuple[str, ...] = HEAD_NAMES
    drop_path: float = 0.0
    layernorm_eps: float = 1e-5
    logit_scale_max: float = math.log(100.0)
    # BERT-style: mlm_head.weight is text_embed.weight (stored once, re-tied on load; the
    # state_dict still lists both keys for export parity).
    tie_word_embeddings: bool = False

    def __post_init__(self) -> None:
        if min(self.embed_dim, self.layers, self.heads, self.ffn_dim) <= 0:
            raise ConfigError(
                f"config {self.name!r}: embed_dim, layers, heads, ffn_dim must be > 0"
            )
        if self.embed_dim % self.heads:
            raise ConfigError(
                f"config {self.name!r}: embed_dim {self.embed_dim} is not divisible by heads "
                f"{self.heads}; pick heads dividing embed_dim"
            )
        unknown = [h for h in self.task_heads if h not in HEAD_NAMES]
        if unknown or len(set(self.task_heads)) != len(self.task_heads):
            raise ConfigError(
                f"task_heads {self.task_heads!r}: use distinct names from {', '.join(HEAD_NAMES)}"
            )
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"drop_path {self.drop_path}: must be in [0, 1)")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.heads

    def replace(self, **changes: Any) -> GeoMeltConfig:
        return dataclasses.replace(self, **changes)

    def with_img_size(self, img_size: int) -> GeoMeltConfig:
        return self.replace(vision=dataclasses.replace(self.vision, img_size=img_size))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["task_heads"] = list(self.task_heads)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeoMeltConfig:
        try:
            fields = dict(data)
            fields["vision"] = VisionConfig(**fields["vision"])
            fields["text"] = TextConfig(**fields["text"])
            fields["task_heads"] = tuple(fields["task_heads"])
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise ConfigError(
                f"config record {data!r} is malformed ({exc}); it must come from "
                "GeoMeltConfig.to_dict()"
            ) from exc

    def parameter_counts(self) -> dict[str, int]:
        """Closed-form parameter counts (spec §2.6), without building the model."""
        d, f, v = self.embed_dim, self.ffn_dim, self.text.vocab_size
        p = self.vision.patch_size
        if self.vision.stem == "patch":
            proj = self.vision.in_chans * p * p * d + d
        else:
            proj = HYBRID_CHANNELS * d + d + tuned_stem_parameters(self.vision.stem_tune_from)
        per_expert = 4 * (d * d + d) + 2 * 2 * d + (d * f + f) + (f * d + d) + 2 * f + 2 * d
        backbone = (
            v * d
            + proj
            + 2 * d
            + (self.vision.num_patches + 3) * d
            + self.text.max_positions * d
            + 2 * self.layers * per_expert
            + 4 * d
        )
        retrieval = 2 * d * d + 1 if "retrieval" in self.task_heads else 0
        head_weight = 0 if self.tie_word_embeddings else d * v
        caption = head_weight + v if "caption" in self.task_heads else 0
        return {
            "backbone": backbone,
            "retrieval": retrieval,
            "caption": caption,
            "total": backbone + retrieval + caption,
        }
