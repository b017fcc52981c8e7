"""Captioning masks: the image/causal-text attention mask and masked-token corruption (§4.1-4.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import TokenizerSpec
from .errors import ConfigError

__all__ = ["MaskedCaption", "caption_attention_bias", "caption_blocked_mask", "mask_caption_tokens"]

# Additive score for blocked pairs (torchscale); exp underflows to exactly 0 in fp32.
BLOCKED_SCORE = -1e8


def caption_blocked_mask(
    image_tokens: int, text_len: int, device: torch.device | None = None
) -> torch.Tensor:
    """0/1 mask (L, L), L = image_tokens + text_len, 1 = blocked (spec §4.2)."""
    total = image_tokens + text_len
    allowed = torch.zeros(total, total, dtype=torch.long, device=device)
    allowed[:image_tokens, :image_tokens] = 1
    allowed[image_tokens:, :image_tokens] = 1
    allowed[image_tokens:, image_tokens:] = torch.tril(
        torch.ones(text_len, text_len, dtype=torch.long, device=device)
    )
    return 1 - allowed


def caption_attention_bias(
    image_tokens: int,
    text_len: int,
    *,
    last_rows: int | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Additive bias (rows, L): −1e8 where blocked; `last_rows` keeps the decoding rows only."""
    blocked = caption_blocked_mask(image_tokens, text_len, device)
    if last_rows is not None:
        blocked = blocked[-last_rows:]
    return blocked.to(dtype) * BLOCKED_SCORE


@dataclass(frozen=True)
class MaskedCaption:
    """Corrupted text ids (B, T), masked positions (B, T) bool, and the original ids there."""

    input_ids: torch.Tensor
    masked_positions: torch.Tensor
    targets: torch.Tensor


def masked_count(real_tokens: torch.Tensor, mask_prob: float) -> torch.Tensor:
    """k = max(1, min(int(n·p + 0.5), n − 1)) per row (spec §4.1)."""
    k = torch.floor(real_tokens.double() * mask_prob + 0.5).long()
    return torch.clamp(torch.minimum(k, real_tokens - 1), min=1)


def mask_caption_tokens(
    ids: torch.Tensor,
    padding_mask: torch.Tensor,
    spec: TokenizerSpec,
    *,
    mask_prob: float = 0.6,
    generator: torch.Generator | None = None,
) -> MaskedCaption:
    """Pick k positions in 1..n−1 per row, replace 80 % by [MASK], 10 % random, 10 % kept.

    ids (B, T) laid out as [bos] pieces [eos] [pad]...; padding_mask (B, T) true on padding.
    """
    if not 0.0 < mask_prob < 1.0:
        raise ConfigError(f"mask_prob {mask_prob}: must be in (0, 1), e.g. 0.6")
    pad = padding_mask.bool()
    real = (~pad).sum(dim=1)
    if bool((real < 2).any()):
        raise ConfigError(
            "a caption row has fewer than 2 real tokens; every row needs [bos] and [eos]"
        )
    device = ids.device
    k = masked_count(real, mask_prob)
    scores = torch.rand(ids.shape, generator=generator, device=device)
    scores[:, 0] = 2.0  # BOS is never masked
    scores = scores.masked_fill(pad, 3.0)  # padding is never masked
    rank = scores.argsort(dim=1).argsort(dim=1)
    chosen = rank < k[:, None]
    draw = torch.rand(ids.shape, generator=generator, device=device)
    random_ids = torch.randint(
        spec.rand_low, spec.rand_high + 1, ids.shape, generator=generator, device=device
    )
    corrupted = torch.where(draw < 0.8, torch.full_like(ids, spec.mask_id), ids)
    corrupted = torch.where(draw >= 0.9, random_ids, corrupted)
    corrupted = torch.where(chosen, corrupted, ids)
    return MaskedCaption(input_ids=corrupted, masked_positions=chosen, targets=ids[chosen])
