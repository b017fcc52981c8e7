"""Multiway multi-head self-attention with Sub-LN and a key/value cache (spec §2.2, §4.3)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .multiway import Multiway

__all__ = ["KVCache", "LayerCache", "MultiwayAttention"]


@dataclass
class LayerCache:
    """Cached keys/values of one layer, shape (B, H, S_cached, head_dim)."""

    key: torch.Tensor | None = None
    value: torch.Tensor | None = None


@dataclass
class KVCache:
    """Per-layer key/value cache used by incremental caption decoding."""

    layers: list[LayerCache] = field(default_factory=list)

    @classmethod
    def empty(cls, num_layers: int) -> KVCache:
        return cls([LayerCache() for _ in range(num_layers)])

    @property
    def length(self) -> int:
        first = self.layers[0].key if self.layers else None
        return 0 if first is None else int(first.size(2))

    def drop_last(self) -> None:
        """Forget the newest entry (the [MASK] slot after each decoding step)."""
        for layer in self.layers:
            if layer.key is not None and layer.value is not None:
                layer.key = layer.key[:, :, :-1]
                layer.value = layer.value[:, :, :-1]

    def reorder(self, beam_idx: torch.Tensor) -> None:
        for layer in self.layers:
            if layer.key is not None and layer.value is not None:
                layer.key = layer.key.index_select(0, beam_idx)
                layer.value = layer.value.index_select(0, beam_idx)

    def repeat_interleave(self, times: int) -> None:
        for layer in self.layers:
            if layer.key is not None and layer.value is not None:
                layer.key = layer.key.repeat_interleave(times, dim=0)
                layer.value = layer.value.repeat_interleave(times, dim=0)


class MultiwayAttention(nn.Module):
    """torchscale MultiheadAttention (self-attention, subln=True, multiway=True)."""

    def __init__(self, embed_dim: int, num_heads: int, eps: float):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim**-0.5
        # Registration order k, v, q, out matches the official state_dict order (spec §2.1).
        self.k_proj = Multiway(nn.Linear(embed_dim, embed_dim, bias=True))
        self.v_proj = Multiway(nn.Linear(embed_dim, embed_dim, bias=True))
        self.q_proj = Multiway(nn.Linear(embed_dim, embed_dim, bias=True))
        self.out_proj = Multiway(nn.Linear(embed_dim, embed_dim, bias=True))
        self.inner_attn_ln = Multiway(nn.LayerNorm(embed_dim, eps=eps))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)

    def forward(
        self,
        x: torch.Tensor,
        split: int,
        *,
        key_padding_mask: torch.Tensor | None = None,
        attn_bias: torch.Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        """x (B, T, D); key_padding_mask (B, S) true = padded; attn_bias (T, S) additive."""
        batch, length, _ = x.shape
        q = self._heads(self.q_proj(x, split) * self.scaling)
        k = self._heads(self.k_proj(x, split))
        v = self._heads(self.v_proj(x, split))
        if cache is not None:
            if cache.key is not None and cache.value is not None:
                k = torch.cat([cache.key, k], dim=2)
                v = torch.cat([cache.value, v], dim=2)
            cache.key, cache.value = k, v
        scores = q @ k.transpose(-1, -2)  # (B, H, T, S)
        if attn_bias is not None:
            scores = scores + attn_bias.to(scores.dtype)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :].bool(), float("-inf"))
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).type_as(scores)
        attn = (probs @ v).transpose(1, 2).reshape(batch, length, self.embed_dim)
        attn = self.inner_attn_ln(attn, split)
        out: torch.Tensor = self.out_proj(attn, split)
        return out
