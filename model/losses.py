"""Training losses: label-smoothed masked-token loss with drop-worst, and symmetric ITC (§3.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConfigError

__all__ = ["caption_loss", "contrastive_loss"]


def caption_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    label_smoothing: float = 0.1,
    drop_worst_ratio: float = 0.0,
    step: int = 0,
    drop_worst_after: int = 12000,
) -> torch.Tensor:
    """Mean per-token KL(q ‖ softmax(z)) over masked positions; logits (M, V), targets (M,).

    q puts 1−ε on the target and ε/(V−1) elsewhere. When drop_worst_ratio > 0 and
    step > drop_worst_after only the ⌊M(1−ρ)⌋ smallest token losses are kept (at least one).
    """
    if logits.dim() != 2 or targets.shape != logits.shape[:1]:
        raise ConfigError(
            f"logits {tuple(logits.shape)} / targets {tuple(targets.shape)}: need (M, V) and (M,)"
        )
    if not 0.0 <= label_smoothing < 1.0 or not 0.0 <= drop_worst_ratio < 1.0:
        raise ConfigError(
            f"label_smoothing {label_smoothing} / drop_worst_ratio {drop_worst_ratio}: "
            "both must lie in [0, 1)"
        )
    vocab = logits.size(-1)
    # Half-precision logits are promoted; fp64 stays fp64.
    log_p = F.log_softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1)
    q = torch.full_like(log_p, label_smoothing / (vocab - 1))
    q.scatter_(1, targets[:, None], 1.0 - label_smoothing)
    per_token = (torch.xlogy(q, q) - q * log_p).sum(dim=-1)
    if drop_worst_ratio > 0.0 and step > drop_worst_after:
        keep = max(1, int(per_token.numel() * (1.0 - drop_worst_ratio)))
        per_token = per_token.topk(keep, largest=False).values
    return per_token.mean()


def contrastive_loss(
    logits_per_image: torch.Tensor, positives: torch.Tensor | None = None
) -> torch.Tensor:
    """½[CE(S, y) + CE(Sᵀ, y)] with y = 0..B−1 for a square similarity matrix S (B, B).

    `positives` (B, B) bool, diagonal set, marks other pairs that also match (two images of
    one scene class under class-only captions, two images with the same caption): each row's
    target is then uniform over its positives instead of one-hot, so true matches are not
    pushed apart as negatives. Without it (or with only the diagonal) this is plain InfoNCE.
    """
    if logits_per_image.dim() != 2 or logits_per_image.size(0) != logits_per_image.size(1):
        raise ConfigError(
            f"similarity of shape {tuple(logits_per_image.shape)}: need a square (B, B) matrix"
        )
    if positives is None:
        labels = torch.arange(logits_per_image.size(0), device=logits_per_image.device)
        return 0.5 * (
            F.cross_entropy(logits_per_image, labels)
            + F.cross_entropy(logits_per_image.t(), labels)
        )
    if positives.shape != logits_per_image.shape or not bool(positives.diagonal().all()):
        raise ConfigError(
            f"positives of shape {tuple(positives.shape)}: need a (B, B) bool matrix with "
            "the diagonal set"
        )
    targets = positives.to(logits_per_image.dtype)
    targets = targets / targets.sum(dim=1, keepdim=True)
    targets_t = positives.t().to(logits_per_image.dtype)
    targets_t = targets_t / targets_t.sum(dim=1, keepdim=True)
    return 0.5 * (
        F.cross_entropy(logits_per_image, targets)
        + F.cross_entropy(logits_per_image.t(), targets_t)
    )
