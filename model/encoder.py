"""Embeddings, Sub-LN feed-forward, encoder layers and the multiway encoder (spec §2.1-2.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import KVCache, MultiwayAttention
from .multiway import Multiway
from .stem import STEM_CHANNELS, EfficientNetLite0Stem

__all__ = ["Encoder", "EncoderLayer", "FeedForward", "PositionalEmbedding", "VisionEmbedding"]

# fairseq convention: rows 0 and 1 of every learned position table are never read by default.
POSITION_OFFSET = 2


class VisionEmbedding(nn.Module):
    """Patchify with a strided conv and prepend CLS; `mask_token` exists for key parity only."""

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        stem: str = "patch",
        stem_tune_from: int | None = None,
    ):
        super().__init__()
        self.img_size = img_size
        self.grid = img_size // patch_size
        self.num_patches = self.grid**2
        self.stem: EfficientNetLite0Stem | None = None
        if stem == "patch":
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        else:
            self.stem = EfficientNetLite0Stem(tune_from=stem_tune_from)
            self.proj = nn.Conv2d(STEM_CHANNELS, embed_dim, kernel_size=1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))

    def num_position_embeddings(self) -> int:
        return self.num_patches + 1

    @property
    def feature_grid(self) -> int:
        """Side of the cached frozen-stem feature maps this embedding accepts."""
        if self.stem is None:
            return self.grid
        return self.img_size // self.stem.feature_stride

    def takes_features(self, x: torch.Tensor) -> bool:
        """True for cached frozen-stem features (B, C, g, g) instead of pixels."""
        return self.stem is not None and x.size(1) == self.stem.feature_channels

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            if not self.takes_features(pixels):
                with torch.no_grad():
                    pixels = self.stem.frozen_features(pixels)
            pixels = self.stem.tail(pixels)
        x = self.proj(pixels.to(self.proj.weight.dtype)).flatten(2).transpose(1, 2)  # (B, N, D)
        cls = self.cls_token.expand(x.size(0), -1, -1)
        return torch.cat([cls, x], dim=1)  # (B, N+1, D)


class PositionalEmbedding(nn.Embedding):
    """Learned positions; token j of a segment reads row j+2 unless positions are explicit."""

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        if positions is None:
            positions = torch.arange(
                POSITION_OFFSET, x.size(1) + POSITION_OFFSET, device=x.device
            ).unsqueeze(0)
        return F.embedding(positions, self.weight)


class FeedForward(nn.Module):
    """fc1 -> GELU(erf) -> Sub-LN -> fc2."""

    def __init__(self, embed_dim: int, ffn_dim: int, eps: float):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.ffn_layernorm = nn.LayerNorm(ffn_dim, eps=eps)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc1(x).float()).type_as(x)
        out: torch.Tensor = self.fc2(self.ffn_layernorm(h))
        return out


class DropPath(nn.Module):
    """Stochastic depth per sample; identity in eval mode or at rate 0."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.size(0),) + (1,) * (x.dim() - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


class EncoderLayer(nn.Module):
    """Pre-LN multiway block with Sub-LN (Magneto)."""

    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int, eps: float, drop_path: float):
        super().__init__()
        self.self_attn = MultiwayAttention(embed_dim, num_heads, eps)
        self.self_attn_layer_norm = Multiway(nn.LayerNorm(embed_dim, eps=eps))
        self.ffn = Multiway(FeedForward(embed_dim, ffn_dim, eps))
        self.final_layer_norm = Multiway(nn.LayerNorm(embed_dim, eps=eps))
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        x: torch.Tensor,
        split: int,
        *,
        key_padding_mask: torch.Tensor | None,
        attn_bias: torch.Tensor | None,
        cache: KVCache | None = None,
        index: int = 0,
    ) -> torch.Tensor:
        attn = self.self_attn(
            self.self_attn_layer_norm(x, split),
            split,
            key_padding_mask=key_padding_mask,
            attn_bias=attn_bias,
            cache=None if cache is None else cache.layers[index],
        )
        x = x + self.drop_path(attn)
        ffn_out: torch.Tensor = self.drop_path(self.ffn(self.final_layer_norm(x, split), split))
        return x + ffn_out


class Encoder(nn.Module):
    """Position tables (A: vision, B: text), L layers, output LayerNorm."""

    def __init__(
        self,
        *,
        embed_dim: int,
        num_heads: int,
        ffn_dim: int,
        num_layers: int,
        vision_positions: int,
        text_positions: int,
        eps: float,
        drop_path: float,
    ):
        super().__init__()
        self.embed_positions = Multiway(
            PositionalEmbedding(vision_positions, embed_dim),
            language=PositionalEmbedding(text_positions, embed_dim),
        )
        # linspace(0, drop_path, L) computed in Python so meta-device builds work.
        step = drop_path / (num_layers - 1) if num_layers > 1 else 0.0
        rates = [i * step for i in range(num_layers)]
        self.layers = nn.ModuleList(
            EncoderLayer(embed_dim, num_heads, ffn_dim, eps, rate) for rate in rates
        )
        self.layer_norm = Multiway(nn.LayerNorm(embed_dim, eps=eps))

    def forward(
        self,
        tokens: torch.Tensor,
        split: int,
        *,
        padding_mask: torch.Tensor | None = None,
        attn_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = tokens + self.embed_positions(tokens, split, positions=positions)
        if padding_mask is not None:
            x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        # As torchscale: no key-padding mask while decoding with a cache.
        key_padding_mask = padding_mask if cache is None else None
        for index, layer in enumerate(self.layers):
            x = layer(
                x,
                split,
                key_padding_mask=key_padding_mask,
                attn_bias=attn_bias,
                cache=cache,
                index=index,
            )
        out: torch.Tensor = self.layer_norm(x, split)
        return out
