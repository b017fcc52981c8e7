"""Multiway wrapper: a vision copy `A` and a language copy `B` of one module (spec §2.3).

The split position is passed to every call instead of being stored on the module, so one
module can serve image-only (-1: all tokens to A), text-only (0: all to B) and fused passes
(N+1: first N+1 tokens to A, the rest to B) without shared mutable state.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["IMAGE_ONLY", "TEXT_ONLY", "Multiway"]

IMAGE_ONLY = -1
TEXT_ONLY = 0


class Multiway(nn.Module):
    """Routes the tokens before `split` along `dim` to expert A, the others to expert B."""

    def __init__(self, module: nn.Module, *, dim: int = 1, language: nn.Module | None = None):
        super().__init__()
        self.A = module
        self.B = copy.deepcopy(module) if language is None else language
        self.dim = dim

    def forward(self, x: torch.Tensor, split: int, **kwargs: Any) -> torch.Tensor:
        out: torch.Tensor
        if split == IMAGE_ONLY:
            out = self.A(x, **kwargs)
        elif split == TEXT_ONLY:
            out = self.B(x, **kwargs)
        else:
            vision, text = torch.split(x, [split, x.size(self.dim) - split], dim=self.dim)
            # Contiguous chunks give every expert (and a LoRA wrapper around it) the same
            # GEMM path, so wrapping with zero-initialised adapters is bit-exact.
            out = torch.cat(
                [self.A(vision.contiguous(), **kwargs), self.B(text.contiguous(), **kwargs)],
                dim=self.dim,
            )
        return out
