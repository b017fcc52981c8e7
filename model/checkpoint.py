"""Weights on disk: safetensors with embedded config + sha256 sidecar, and official BEiT-3 .pth.

Native files (`*.safetensors`) hold exactly the §2.5 keys; the config, tokenizer record and
optional extra state (e.g. the loss balancer) travel as JSON in the safetensors metadata, and
`<file>.sha256` holds the file's digest, checked on every load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from .config import GeoMeltConfig, TokenizerSpec
from .errors import CheckpointError
from .network import GeoMeltModel

__all__ = [
    "Checkpoint",
    "LoadReport",
    "export_official",
    "file_sha256",
    "interpolate_vision_positions",
    "load_official",
    "read_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

FORMAT = "geomelt-v1"
VISION_TABLE = "beit3.encoder.embed_positions.A.weight"
TEXT_EMBED = "beit3.text_embed.weight"
TIED_HEAD = "mlm_head.weight"
VOCAB_KEYS = (TEXT_EMBED, "mlm_head.weight", "mlm_head.bias")
# 2 fairseq rows + the CLS row precede the patch grid in the vision table (spec §6.3).
EXTRA_POSITION_ROWS = 3
# Other names official or third-party files use for the captioning head.
HEAD_ALIASES = {"lm_head.": "mlm_head."}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


@dataclass(frozen=True)
class Checkpoint:
    config: GeoMeltConfig
    tokenizer: TokenizerSpec
    state_dict: dict[str, torch.Tensor]
    extra: dict[str, Any]
    sha256: str


def save_checkpoint(
    model: GeoMeltModel,
    path: Path,
    *,
    tokenizer: TokenizerSpec,
    extra: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> str:
    """Write model weights + config to `path` (safetensors) and its sha256 beside; return it.

    Tied weights (config.tie_word_embeddings) are stored once: `mlm_head.weight` is left out
    and restored from `beit3.text_embed.weight` on read. `dtype` (e.g. float16) casts
    floating tensors for storage; readers cast back.
    """
    config = model.geomelt_config
    if tokenizer.model_vocab != config.text.vocab_size:
        raise CheckpointError(
            f"tokenizer {tokenizer.kind} expects {tokenizer.model_vocab} vocabulary rows but "
            f"model {config.name!r} has {config.text.vocab_size}; use the matching tokenizer"
        )
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        tensors.pop(TIED_HEAD, None)
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    metadata = {
        "format": FORMAT,
        "config": config.to_json(),
        "tokenizer": json.dumps(tokenizer.to_dict(), sort_keys=True),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    digest = file_sha256(path)
    _sidecar(path).write_text(digest + "\n", encoding="utf-8")
    logger.info("saved %s (%d tensors, sha256 %s)", path, len(tensors), digest[:12])
    return digest


def read_checkpoint(path: Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a native checkpoint, verifying its sha256 sidecar."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; pass a .safetensors path")
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise CheckpointError(
            f"{path}: missing {sidecar.name}; re-save with geomelt.model.save_checkpoint"
        )
    expected = sidecar.read_text(encoding="utf-8").split()[0]
    digest = file_sha256(path)
    if digest != expected:
        raise CheckpointError(
            f"{path}: sha256 {digest[:12]}… does not match {sidecar.name} ({expected[:12]}…); "
            "the file is corrupt or was modified, copy it again"
        )
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: metadata format {metadata.get('format')!r} is not {FORMAT!r}; "
            "for official BEiT-3 .pth files use load_official"
        )
    config = GeoMeltConfig.from_dict(json.loads(metadata["config"]))
    if config.tie_word_embeddings and TEXT_EMBED in tensors:
        tensors.setdefault(TIED_HEAD, tensors[TEXT_EMBED])
    return Checkpoint(
        config=config,
        tokenizer=TokenizerSpec.from_dict(json.loads(metadata["tokenizer"])),
        state_dict=tensors,
        extra=json.loads(metadata.get("extra", "{}")),
        sha256=digest,
    )


def export_official(model: torch.nn.Module, path: Path) -> None:
    """Write `{"model": fp32 state_dict}` that official BEiT-3 code loads (spec §6.1, §6.4)."""
    state = model.state_dict()
    adapters = [k for k in state if "lora_" in k or ".base_layer." in k]
    if adapters:
        raise CheckpointError(
            f"model holds LoRA adapter tensors (e.g. {adapters[0]}); call merge_lora first"
        )
    tensors = {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous()
        for k, v in state.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": tensors}, path)


def interpolate_vision_positions(table: torch.Tensor, target_rows: int) -> torch.Tensor:
    """Resize the patch grid of a vision position table bicubically (spec §6.3)."""
    rows, dim = table.shape
    src = math.isqrt(rows - EXTRA_POSITION_ROWS)
    dst = math.isqrt(target_rows - EXTRA_POSITION_ROWS)
    if src * src != rows - EXTRA_POSITION_ROWS or dst * dst != target_rows - EXTRA_POSITION_ROWS:
        raise CheckpointError(
            f"vision position table {rows} -> {target_rows} rows: both must be 3 + a square"
        )
    if rows == target_rows:
        return table
    extra, grid = table[:EXTRA_POSITION_ROWS], table[EXTRA_POSITION_ROWS:]
    grid = grid.reshape(1, src, src, dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(dst, dst), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(dst * dst, dim).to(table.dtype)
    return torch.cat([extra, grid], dim=0)


@dataclass
class LoadReport:
    """What load_official did: keys absent from the file, ignored, dropped, and resized."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    interpolated: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)


def _unwrap(raw: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict):
        for key in ("model", "module"):
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(
            f"{source}: no state_dict found under 'model', 'module' or at the top level"
        )
    return raw


def _read_pth(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; pass an official BEiT-3 .pth path")
    try:
        # Official fine-tuned files also pickle their argparse Namespace under "args".
        with torch.serialization.safe_globals([argparse.Namespace]):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({exc})") from exc
    return _unwrap(raw, str(path))


def _check_compatible(model: GeoMeltModel, state: dict[str, torch.Tensor]) -> None:
    config = model.geomelt_config
    if TEXT_EMBED not in state:
        raise CheckpointError(f"checkpoint has no {TEXT_EMBED}; it is not a BEiT-3 state_dict")
    vocab, dim = state[TEXT_EMBED].shape
    layers = 1 + max(
        (int(k.split(".")[3]) for k in state if k.startswith("beit3.encoder.layers.")), default=-1
    )
    if dim != config.embed_dim or layers != config.layers:
        raise CheckpointError(
            f"checkpoint has width {dim} and {layers} layers but preset {config.name!r} has "
            f"{config.embed_dim} and {config.layers}; build the matching preset (e.g. 'base')"
        )
    if vocab != config.text.vocab_size:
        raise CheckpointError(
            f"checkpoint vocabulary has {vocab} rows but preset {config.name!r} has "
            f"{config.text.vocab_size}; use a preset with the same tokenizer or pass vocab_map"
        )


def _remap_vocab(state: dict[str, torch.Tensor], vocab_map: torch.Tensor) -> None:
    """Row i of every vocabulary tensor becomes the file's row vocab_map[i]."""
    for key in VOCAB_KEYS:
        if key in state:
            state[key] = state[key].index_select(0, vocab_map.to(torch.long))


def load_official(
    model: GeoMeltModel,
    source: Path | dict[str, Any],
    *,
    vocab_map: torch.Tensor | None = None,
) -> LoadReport:
    """Load an official BEiT-3 checkpoint (spec §6.2) non-strictly and report what happened.

    `vocab_map` (model V,) lists for every model token id the checkpoint row to take, for
    files whose vocabulary differs from the model's.
    """
    state = dict(_read_pth(source) if isinstance(source, Path) else _unwrap(source, "state"))
    report = LoadReport()
    for key in list(state):
        for alias, name in HEAD_ALIASES.items():
            if key.startswith(alias):
                state[name + key[len(alias) :]] = state.pop(key)
                report.renamed.append(key)
    if vocab_map is not None:
        _remap_vocab(state, vocab_map)
    _check_compatible(model, state)
    own = model.state_dict()
    table = state.get(VISION_TABLE)
    if table is not None and table.shape[0] != own[VISION_TABLE].shape[0]:
        state[VISION_TABLE] = interpolate_vision_positions(table, own[VISION_TABLE].shape[0])
        report.interpolated.append(VISION_TABLE)
    report.unexpected = sorted(k for k in state if k not in own)
    report.mismatched = sorted(
        k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)
    )
    usable = {k: v for k, v in state.items() if k in own and k not in report.mismatched}
    report.missing = sorted(k for k in own if k not in usable)
    with torch.no_grad():
        for key, tensor in usable.items():
            own[key].copy_(tensor)
    for key in report.unexpected:
        logger.warning("ignoring unexpected checkpoint key %s", key)
    for key in report.mismatched:
        logger.warning("dropping %s: shape %s does not fit the model", key, tuple(state[key].shape))
    if report.missing:
        logger.info("keys missing from the checkpoint (left at init): %s", report.missing)
    return report
