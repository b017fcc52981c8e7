"""Retrieval metrics R@K and mR (spec §7.1), with explicit tie rules.

`tie_rule="random"` is the exact expectation under uniformly random tie-breaking (the
headline number); `"stable"` counts tied competitors with a lower index as better, as a
stable argsort in published code does.
"""

from __future__ import annotations

from math import comb

import torch

from .errors import ConfigError

__all__ = ["TIE_RULES", "retrieval_metrics"]

TIE_RULES = ("random", "stable")
KS = (1, 5, 10)


def _hit_probability(scores: torch.Tensor, targets: torch.Tensor, k: int, tie_rule: str) -> float:
    """P(at least one target ranks in the top k) for one query; scores (C,), targets (C,) bool."""
    best = scores[targets].max()
    better = int((scores[~targets] > best).sum())
    if tie_rule == "stable":
        first_target = int(torch.nonzero(targets & (scores == best))[0])
        tied_before = int((~targets & (scores == best))[:first_target].sum())
        return 1.0 if better + tied_before < k else 0.0
    slots = k - better
    if slots <= 0:
        return 0.0
    tied_targets = int((targets & (scores == best)).sum())
    tied_others = int((~targets & (scores == best)).sum())
    if slots > tied_others:
        return 1.0
    # Hypergeometric: chance that the first `slots` of the shuffled tie group are all others.
    return 1.0 - comb(tied_others, slots) / comb(tied_others + tied_targets, slots)


def retrieval_metrics(
    scores: torch.Tensor, caption_image: torch.Tensor, *, tie_rule: str = "random"
) -> dict[str, float]:
    """scores (I, C) image-caption similarities; caption_image (C,) image index per caption.

    TR@K: % images with at least one own caption in the top K captions; IR@K: % captions
    whose image is in the top K images; mR = mean of the six (BEiT-3's average_score).
    """
    if tie_rule not in TIE_RULES:
        raise ConfigError(f"tie_rule {tie_rule!r}: use one of {', '.join(TIE_RULES)}")
    num_images, num_captions = scores.shape
    if caption_image.shape != (num_captions,):
        raise ConfigError(
            f"caption_image of shape {tuple(caption_image.shape)}: need ({num_captions},), "
            "one image index per caption column"
        )
    own = caption_image[None, :] == torch.arange(num_images)[:, None]  # (I, C)
    if not bool(own.any(dim=1).all()):
        raise ConfigError("every image needs at least one caption in caption_image")
    result: dict[str, float] = {}
    for k in KS:
        tr = sum(_hit_probability(scores[i], own[i], k, tie_rule) for i in range(num_images))
        ir = sum(
            _hit_probability(scores[:, c], own[:, c], k, tie_rule) for c in range(num_captions)
        )
        result[f"tr@{k}"] = 100.0 * tr / num_images
        result[f"ir@{k}"] = 100.0 * ir / num_captions
    result["mr"] = sum(result[f"{d}@{k}"] for d in ("tr", "ir") for k in KS) / 6
    return result
