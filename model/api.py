"""The public entry point: `load(name_or_path)` -> GeoMelt (model + tokenizer + config)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import read_checkpoint
from .config import GeoMeltConfig
from .decoding import caption_texts
from .errors import CheckpointError, ConfigError
from .factory import create_model, get_config
from .fusion import FUSION_PREFIX, FusionSpec, SearchFusion
from .image import preprocess_images
from .network import GeoMeltModel
from .tokenizer import TextTokenizer, encode_batch, load_tokenizer

__all__ = ["RANDOM_MODELS", "SHIPPED_MODELS", "GeoMelt", "ZeroShotResult", "load", "state_sha256"]

logger = logging.getLogger(__name__)

# Seeded randomly initialised models: fast, weight-free stand-ins for tests and smoke runs.
RANDOM_MODELS = {"tiny-random": "tiny", "small-random": "small"}
RANDOM_SEED = 0
# Trained weights shipped inside the package (model/weights/), sha256-checked on load.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED_MODELS = {"geomelt-small": "geomelt-small.safetensors"}
ZERO_SHOT_TEMPLATE = "a satellite image of {}."
TEXT_MAX_LEN = 64


@dataclass(frozen=True)
class ZeroShotResult:
    """probabilities (B, K) over labels, argmax (B,) and the winning label strings."""

    probabilities: torch.Tensor
    indices: torch.Tensor
    labels: list[str]


def state_sha256(model: GeoMeltModel) -> str:
    """Digest of every key and tensor byte: a version for weights that have no file."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


class GeoMelt:
    """A loaded model with its tokenizer; inputs are moved to the model's device here.

    Outputs are returned on the CPU as float32 (embeddings) or strings (captions).
    """

    def __init__(
        self,
        model: GeoMeltModel,
        tokenizer: TextTokenizer,
        *,
        name: str,
        sha256: str,
        fusion: SearchFusion | None = None,
    ) -> None:
        if tokenizer.spec.vocab_size_tok > model.geomelt_config.text.vocab_size:
            raise ConfigError(
                f"tokenizer {tokenizer.spec.kind} has {tokenizer.spec.vocab_size_tok} ids but "
                f"model {name!r} only {model.geomelt_config.text.vocab_size} rows; "
                "load the tokenizer named in the checkpoint"
            )
        if fusion is not None and model.beit3.vision_embed.stem is None:
            raise ConfigError(
                f"model {name!r}: search fusion pools the EfficientNet stem's map but this "
                "preset has none; attach fusion heads to a hybrid preset only"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        # Caption-aware ranking (model/fusion.py); None: search vectors are the embeddings.
        self.fusion = fusion
        self.name = name
        self.sha256 = sha256
        self.version = f"{name}@{sha256[:12]}"

    @property
    def config(self) -> GeoMeltConfig:
        return self.model.geomelt_config

    @property
    def embedding_dim(self) -> int:
        return self.config.embed_dim

    @property
    def search_dim(self) -> int:
        """Width of what the search indexes and queries with (search_vectors, encode_queries)."""
        if self.fusion is None:
            return self.embedding_dim
        return self.fusion.dim(self.embedding_dim)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def pixels(self, images: Any) -> torch.Tensor:
        return preprocess_images(
            images, self.config.vision.img_size, device=self.device, dtype=self.dtype
        )

    def tokenize(self, texts: list[str], max_len: int = TEXT_MAX_LEN) -> tuple[torch.Tensor, ...]:
        ids, padding = encode_batch(self.tokenizer, list(texts), max_len)
        return ids.to(self.device), padding.to(self.device)

    @torch.no_grad()
    def encode_images(self, images: Any) -> torch.Tensor:
        """uint8 images NHWC or NCHW (numpy or torch) -> (B, D) float32 unit vectors."""
        return self.model.encode_images(self.pixels(images)).float().cpu()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Strings -> (B, D) float32 unit vectors."""
        if not texts:
            return torch.zeros(0, self.embedding_dim)
        ids, padding = self.tokenize(texts)
        return self.model.encode_texts(ids, padding).float().cpu()

    @torch.no_grad()
    def search_vectors(self, images: Any, captions: list[str]) -> torch.Tensor:
        """What the search stores per image: (B, search_dim) float32, unit norm.

        `captions` are the images' own generated captions (`caption`); without fusion they are
        not used and the vectors are `encode_images`.
        """
        pixels = self.pixels(images)
        stem = self.model.beit3.vision_embed.stem
        if self.fusion is None or stem is None:
            return self.model.encode_images(pixels).float().cpu()
        # One pass through the frozen prefix feeds both the encoder and the pooled head input.
        features = stem.frozen_features(pixels)
        embeddings = self.model.encode_images(features)
        pooled = self.fusion.pooled(stem, features)
        return self.fusion.image_vectors(embeddings, pooled, captions)

    @torch.no_grad()
    def encode_queries(self, texts: list[str]) -> torch.Tensor:
        """Search queries -> (B, search_dim) float32 unit vectors, to rank `search_vectors` by
        cosine (the fused score when the model carries fusion heads)."""
        embeddings = self.encode_texts(texts)
        if self.fusion is None:
            return embeddings
        return self.fusion.query_vectors(embeddings, texts)

    @torch.no_grad()
    def caption(
        self,
        images: Any,
        beams: int = 3,
        max_len: int = 32,
        length_penalty: float = 0.6,
        no_repeats: bool = True,
    ) -> list[str]:
        """One caption per image; beams=1 is greedy decoding.

        `no_repeats`: no word piece twice in a row (nor across a hyphen) and no bigram twice
        (decoding.RepetitionGuard).
        """
        return caption_texts(
            self.model,
            self.tokenizer,
            self.pixels(images),
            beams=beams,
            max_len=max_len,
            length_penalty=length_penalty,
            no_repeats=no_repeats,
        )

    @torch.no_grad()
    def zero_shot(
        self, images: Any, labels: list[str], template: str = ZERO_SHOT_TEMPLATE
    ) -> ZeroShotResult:
        """Classify images among `labels` by retrieval against prompted label texts."""
        if not labels:
            raise ConfigError("zero_shot got no labels; pass at least one class name")
        image_emb = self.model.encode_images(self.pixels(images))
        ids, padding = self.tokenize([template.format(label) for label in labels])
        text_emb = self.model.encode_texts(ids, padding)
        probs = self.model.similarity(image_emb, text_emb).float().softmax(dim=-1).cpu()
        indices = probs.argmax(dim=-1)
        return ZeroShotResult(probs, indices, [labels[i] for i in indices.tolist()])


def _load_random(name: str, device: str | torch.device, dtype: torch.dtype | None) -> GeoMelt:
    config = get_config(RANDOM_MODELS[name])
    model = create_model(config, seed=RANDOM_SEED)
    sha = state_sha256(model)
    model = model.to(device=device, dtype=dtype) if dtype else model.to(device)
    tokenizer = load_tokenizer(config.text.tokenizer)
    logger.info("built %s (random init, seed %d)", name, RANDOM_SEED)
    return GeoMelt(model, tokenizer, name=name, sha256=sha)


def load(
    name_or_path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> GeoMelt:
    """A named model (SHIPPED_MODELS, RANDOM_MODELS) or a native .safetensors checkpoint path."""
    if str(name_or_path) in RANDOM_MODELS:
        return _load_random(str(name_or_path), device, dtype)
    name = None
    if str(name_or_path) in SHIPPED_MODELS:
        name = str(name_or_path)
        path = WEIGHTS_DIR / SHIPPED_MODELS[name]
    else:
        path = Path(name_or_path)
    if name is not None and not path.is_file():
        raise ConfigError(
            f"model {name!r}: its weights file {path} is missing; reinstall the package "
            "(`pip install -e .` from a full checkout) or pass a .safetensors checkpoint path"
        )
    if not path.is_file():
        raise ConfigError(
            f"model {str(name_or_path)!r} is neither a known name nor a file; available names: "
            f"{', '.join(sorted([*RANDOM_MODELS, *SHIPPED_MODELS]))}, or pass a .safetensors "
            "checkpoint path"
        )
    ckpt = read_checkpoint(path)
    tokenizer = load_tokenizer(ckpt.tokenizer.kind, path.with_name("beit3.spm"))
    if tokenizer.spec != ckpt.tokenizer:
        raise CheckpointError(
            f"{path}: saved with tokenizer {ckpt.tokenizer.kind} (sha256 "
            f"{ckpt.tokenizer.sha256[:12]}) but the available one is {tokenizer.spec.kind} "
            f"(sha256 {tokenizer.spec.sha256[:12]}); supply the tokenizer it was trained with"
        )
    fusion = _fusion_of(ckpt.state_dict, ckpt.extra, str(path))
    with torch.device("meta"):
        model = GeoMeltModel(ckpt.config)
    state = {k: v for k, v in ckpt.state_dict.items() if not k.startswith(FUSION_PREFIX)}
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    model.load_frozen_parts()
    # Weights may be stored in float16 to halve the file; compute in float32 unless asked.
    model = model.to(device=device, dtype=dtype or torch.float32)
    if fusion is not None:
        fusion.heads.to(device)
    return GeoMelt(
        model.eval(), tokenizer, name=name or path.stem, sha256=ckpt.sha256, fusion=fusion
    )


def _fusion_of(
    state: dict[str, torch.Tensor], extra: dict[str, Any], source: str
) -> SearchFusion | None:
    """The checkpoint's search fusion: `fusion.*` tensors plus the weights in its metadata."""
    tensors = {k: v for k, v in state.items() if k.startswith(FUSION_PREFIX)}
    raw = extra.get("fusion")
    if not tensors and raw is None:
        return None
    if not tensors or not isinstance(raw, dict):
        raise CheckpointError(
            f"{source}: has {'fusion tensors' if tensors else 'fusion weights'} without "
            f"{'their weights' if tensors else 'the fusion.* tensors'}; re-attach the heads "
            "with scripts/fusion_heads.py or use the file they were attached to"
        )
    return SearchFusion.from_state(FusionSpec.from_dict(raw, source), tensors, source)
