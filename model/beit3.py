"""The BEiT-3 backbone (`beit3.*` keys): text/vision embeddings and the multiway encoder."""

from __future__ import annotations

import torch
from torch import nn

from .attention import KVCache
from .config import GeoMeltConfig
from .encoder import POSITION_OFFSET, Encoder, VisionEmbedding
from .errors import ConfigError
from .multiway import IMAGE_ONLY, TEXT_ONLY

__all__ = ["BEiT3"]


class BEiT3(nn.Module):
    """torchscale `BEiT3` with multiway=True, subln=True, no scaled/normed embeddings."""

    def __init__(self, config: GeoMeltConfig):
        super().__init__()
        d = config.embed_dim
        self.text_embed = nn.Embedding(config.text.vocab_size, d)
        self.vision_embed = VisionEmbedding(
            config.vision.img_size,
            config.vision.patch_size,
            config.vision.in_chans,
            d,
            stem=config.vision.stem,
            stem_tune_from=config.vision.stem_tune_from,
        )
        self.encoder = Encoder(
            embed_dim=d,
            num_heads=config.heads,
            ffn_dim=config.ffn_dim,
            num_layers=config.layers,
            vision_positions=self.vision_embed.num_position_embeddings() + POSITION_OFFSET,
            text_positions=config.text.max_positions,
            eps=config.layernorm_eps,
            drop_path=config.drop_path,
        )

    def _check_pixels(self, pixels: torch.Tensor) -> None:
        size = self.vision_embed.img_size
        if pixels.dim() == 4 and self.vision_embed.takes_features(pixels):
            size = self.vision_embed.feature_grid
        if pixels.dim() != 4 or tuple(pixels.shape[-2:]) != (size, size):
            raise ConfigError(
                f"pixels of shape {tuple(pixels.shape)}: expected (B, 3, {size}, {size}) (or "
                "cached stem features); resize with geomelt.model.preprocess_images first"
            )

    def forward(
        self,
        *,
        text_ids: torch.Tensor | None = None,
        pixels: torch.Tensor | None = None,
        text_padding_mask: torch.Tensor | None = None,
        attn_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Return (hidden states (B, T, D), split position used)."""
        if text_ids is None:
            if pixels is None:
                raise ConfigError("BEiT3.forward got neither pixels nor text_ids; pass one")
            self._check_pixels(pixels)
            tokens, split, padding = self.vision_embed(pixels), IMAGE_ONLY, None
        elif pixels is None:
            tokens, split, padding = self.text_embed(text_ids), TEXT_ONLY, text_padding_mask
        else:
            self._check_pixels(pixels)
            image_tokens = self.vision_embed(pixels)
            split = image_tokens.size(1)
            tokens = torch.cat([image_tokens, self.text_embed(text_ids)], dim=1)
            padding = None
            if text_padding_mask is not None:
                image_pad = text_padding_mask.new_zeros(image_tokens.shape[:2])
                padding = torch.cat([image_pad, text_padding_mask], dim=1)
        hidden = self.encoder(
            tokens,
            split,
            padding_mask=padding,
            attn_bias=attn_bias,
            cache=cache,
            positions=positions,
        )
        return hidden, split
