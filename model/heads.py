"""Task heads on top of the backbone: retrieval projections and the captioning MLM head (§2.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["INIT_LOGIT_SCALE", "pairwise_logits", "unit_embedding"]

# ln(1/0.07), the CLIP temperature initialisation used by BEiT3ForRetrieval.
INIT_LOGIT_SCALE = 2.6592600369644165


def unit_embedding(head: torch.nn.Module, first_token: torch.Tensor) -> torch.Tensor:
    """Project the first token state (B, D) and L2-normalise it."""
    return F.normalize(head(first_token), dim=-1)


def pairwise_logits(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor, max_scale: float
) -> torch.Tensor:
    """exp(logit_scale)·e_img·e_txtᵀ (B_img, B_txt); the scale is clamped at `max_scale`."""
    return logit_scale.clamp(max=max_scale).exp() * image_emb @ text_emb.t()
