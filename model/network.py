"""GeoMeltModel: the BEiT-3 backbone plus retrieval and captioning heads in one module (§2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import KVCache
from .beit3 import BEiT3
from .config import GeoMeltConfig
from .encoder import POSITION_OFFSET, PositionalEmbedding
from .errors import ConfigError
from .heads import INIT_LOGIT_SCALE, pairwise_logits, unit_embedding
from .masking import caption_attention_bias
from .multiway import Multiway

__all__ = ["GeoMeltModel"]


@torch.no_grad()
def _trunc_normal_(weight: torch.Tensor, std: float) -> None:
    """N(0, std²) truncated at ±std via the inverse CDF (torch's rejection sampler is slow)."""
    bound = math.erf(1.0 / math.sqrt(2.0))  # CDF mass within ±1σ, mapped to (−bound, bound)
    weight.uniform_(-bound, bound).erfinv_().mul_(std * math.sqrt(2.0)).clamp_(-std, std)


class GeoMeltModel(nn.Module):
    """State_dict-compatible with BEiT3ForRetrieval + BEiT3ForCaptioning (spec §2.5).

    The config lives in `geomelt_config` (not `config`, which peft would read as a HF config).
    """

    def __init__(self, config: GeoMeltConfig):
        super().__init__()
        self.geomelt_config = config
        d = config.embed_dim
        self.beit3 = BEiT3(config)
        self.vision_head: nn.Linear | None = None
        self.language_head: nn.Linear | None = None
        self.logit_scale: nn.Parameter | None = None
        self.mlm_head: nn.Linear | None = None
        if "retrieval" in config.task_heads:
            self.vision_head = nn.Linear(d, d, bias=False)
            self.language_head = nn.Linear(d, d, bias=False)
            self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))
        if "caption" in config.task_heads:
            self.mlm_head = nn.Linear(d, config.text.vocab_size, bias=True)
        self.tie_weights()
        self.reset_parameters()

    def tie_weights(self) -> None:
        """Share text_embed.weight with mlm_head.weight when the config asks (call after load)."""
        if self.geomelt_config.tie_word_embeddings and self.mlm_head is not None:
            self.mlm_head.weight = self.beit3.text_embed.weight

    def load_frozen_parts(self) -> None:
        """Materialise and fill the frozen stem (its weights come from a pip package); a tuned
        stem tail is part of the checkpoint and stays as loaded."""
        stem = self.beit3.vision_embed.stem
        if stem is None:
            return
        device = self.beit3.text_embed.weight.device
        stem.load_pretrained(
            device=torch.device("cpu") if device.type == "meta" else device, tuned=False
        )

    @property
    def num_image_tokens(self) -> int:
        return self.geomelt_config.vision.num_tokens

    def reset_parameters(self) -> None:
        """BEiT3Wrapper init (spec §8.3) of every parameter; a no-op on the meta device.

        Linear: truncated normal (std 0.02, ±1σ), bias 0; LayerNorm: 1, 0; text_embed:
        normal std D^-½; position tables: normal std 1; patch conv: PyTorch default;
        cls/mask tokens: 0; logit_scale: ln(1/0.07).
        """
        if self.beit3.text_embed.weight.is_meta:
            return
        d = self.geomelt_config.embed_dim
        with torch.no_grad():
            nn.init.normal_(self.beit3.text_embed.weight, std=d**-0.5)
            vision = self.beit3.vision_embed
            vision.proj.reset_parameters()
            if vision.stem is not None:
                vision.stem.load_pretrained()
            vision.cls_token.zero_()
            vision.mask_token.zero_()
            for module in self.modules():
                if isinstance(module, PositionalEmbedding):
                    nn.init.normal_(module.weight)
                elif isinstance(module, nn.Linear):
                    if module.weight is not self.beit3.text_embed.weight:
                        _trunc_normal_(module.weight, std=0.02)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            if self.logit_scale is not None:
                self.logit_scale.fill_(INIT_LOGIT_SCALE)

    # -- parameter roles, for the optimiser's groups ------------------------------------------
    def no_weight_decay_parameters(self) -> list[nn.Parameter]:
        """Besides 1-D parameters: the class token, the position embeddings, the logit scale
        (decay would pull them toward zero, which regularises nothing)."""
        found = [
            self.beit3.vision_embed.cls_token,
            *self.beit3.encoder.embed_positions.parameters(),
        ]
        return found if self.logit_scale is None else [*found, self.logit_scale]

    def language_parameters(self) -> list[nn.Parameter]:
        """Every multiway layer's language expert and the token embedding: the text side, which
        a MiniLM warm start fills (and LoRA adapters inside those experts)."""
        found = list(self.beit3.text_embed.parameters())
        for module in self.modules():
            if isinstance(module, Multiway):
                found += module.B.parameters()
        return found

    def stem_parameters(self) -> list[nn.Parameter]:
        """The convolutional stem's (its tuned tail starts from ImageNet weights)."""
        stem = self.beit3.vision_embed.stem
        return [] if stem is None else list(stem.parameters())

    # -- retrieval ---------------------------------------------------------------------------
    def retrieval_heads(self) -> tuple[nn.Linear, nn.Linear, nn.Parameter]:
        """(vision head, language head, logit scale); ConfigError when built without them."""
        if self.vision_head is None or self.language_head is None or self.logit_scale is None:
            raise ConfigError(
                f"model {self.geomelt_config.name!r} was built without the retrieval head; "
                "build it with task_heads including 'retrieval'"
            )
        return self.vision_head, self.language_head, self.logit_scale

    def image_states(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image-only pass: (B, N+1, D), every token through the vision experts."""
        hidden: torch.Tensor = self.beit3(pixels=pixels)[0]
        return hidden

    def text_states(
        self, text_ids: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Text-only pass: (B, T, D), every token through the language experts."""
        hidden: torch.Tensor = self.beit3(text_ids=text_ids, text_padding_mask=padding_mask)[0]
        return hidden

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels (B, 3, S, S) -> unit embeddings (B, D)."""
        vision_head, _, _ = self.retrieval_heads()
        return unit_embedding(vision_head, self.image_states(pixels)[:, 0])

    def encode_texts(
        self, text_ids: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token ids (B, T) starting with BOS -> unit embeddings (B, D)."""
        _, language_head, _ = self.retrieval_heads()
        return unit_embedding(language_head, self.text_states(text_ids, padding_mask)[:, 0])

    def similarity(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        _, _, logit_scale = self.retrieval_heads()
        return pairwise_logits(
            image_emb, text_emb, logit_scale, self.geomelt_config.logit_scale_max
        )

    # -- captioning --------------------------------------------------------------------------
    def captioning_head(self) -> nn.Linear:
        """The masked-language-model head that captions; ConfigError when built without it."""
        if self.mlm_head is None:
            raise ConfigError(
                f"model {self.geomelt_config.name!r} was built without the caption head; "
                "build it with task_heads including 'caption'"
            )
        return self.mlm_head

    def fused_states(
        self,
        pixels: torch.Tensor,
        text_ids: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Image ⊕ text pass under the captioning mask: (B, N+1+T, D)."""
        bias = caption_attention_bias(
            self.num_image_tokens, text_ids.size(1), device=text_ids.device
        )
        hidden: torch.Tensor
        hidden, _ = self.beit3(
            pixels=pixels,
            text_ids=text_ids,
            text_padding_mask=padding_mask,
            attn_bias=bias,
            cache=cache,
        )
        return hidden

    def caption_logits(
        self,
        pixels: torch.Tensor,
        text_ids: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """MLM logits over text positions (B, T, V), or (M, V) at `masked_positions` only."""
        mlm_head = self.captioning_head()
        text = self.fused_states(pixels, text_ids, padding_mask)[:, self.num_image_tokens :]
        if masked_positions is not None:
            text = text[masked_positions.bool()]
        logits: torch.Tensor = mlm_head(text)
        return logits

    def decode_first(
        self, pixels: torch.Tensor, bos_id: int, mask_id: int, cache: KVCache
    ) -> torch.Tensor:
        """Step 1 of §4.3: image + [BOS, MASK]; returns log-probs (B, V); cache keeps N+1+1."""
        mlm_head = self.captioning_head()
        batch = pixels.size(0)
        text = torch.tensor([[bos_id, mask_id]], device=pixels.device).expand(batch, 2)
        hidden = self.fused_states(pixels, text, cache=cache)
        cache.drop_last()
        return F.log_softmax(mlm_head(hidden[:, -1]).float(), dim=-1)

    def decode_next(
        self, last_tokens: torch.Tensor, text_len: int, mask_id: int, cache: KVCache
    ) -> torch.Tensor:
        """Cached step of §4.3 at text length c = text_len (>= 3): input [y_{c−2}, MASK]."""
        mlm_head = self.captioning_head()
        batch = last_tokens.size(0)
        device = last_tokens.device
        text = torch.stack([last_tokens, torch.full_like(last_tokens, mask_id)], dim=1)
        # Text indices c−2, c−1 read table rows c, c+1 (fairseq offset 2).
        start = text_len - 2 + POSITION_OFFSET
        positions = torch.arange(start, start + 2, device=device).unsqueeze(0).expand(batch, 2)
        bias = caption_attention_bias(self.num_image_tokens, text_len, last_rows=2, device=device)
        hidden = self.beit3(text_ids=text, attn_bias=bias, cache=cache, positions=positions)[0]
        cache.drop_last()
        return F.log_softmax(mlm_head(hidden[:, -1]).float(), dim=-1)

    def new_cache(self) -> KVCache:
        return KVCache.empty(self.geomelt_config.layers)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
