"""One stage-1 step's task losses: ITC on clean text, masked-token captioning (spec §3.3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import TokenizerSpec
from .heads import unit_embedding
from .losses import caption_loss, contrastive_loss
from .masking import caption_attention_bias, mask_caption_tokens
from .network import GeoMeltModel

__all__ = ["CaptionTrainingSettings", "TaskLosses", "task_losses", "task_losses_shared"]


@dataclass(frozen=True)
class CaptionTrainingSettings:
    """Masking and loss settings; defaults are GeoMELT's (§3.3, §4.1)."""

    mask_prob: float = 0.6
    label_smoothing: float = 0.1
    drop_worst_ratio: float = 0.2
    drop_worst_after: int = 12000


@dataclass(frozen=True)
class TaskLosses:
    itc: torch.Tensor
    cap: torch.Tensor


def task_losses(
    model: GeoMeltModel,
    pixels: torch.Tensor,
    text_ids: torch.Tensor,
    padding_mask: torch.Tensor,
    spec: TokenizerSpec,
    *,
    step: int,
    settings: CaptionTrainingSettings = CaptionTrainingSettings(),
    generator: torch.Generator | None = None,
    positives: torch.Tensor | None = None,
    caption_rows: torch.Tensor | None = None,
) -> TaskLosses:
    """Dual-encoder pass (image-only, clean text-only) and fused pass on corrupted text.

    pixels (B, 3, S, S) normalised; text_ids (B, T) as [bos] pieces [eos] [pad]…; each image
    appears once per batch (duplicates would be false negatives for ITC); `positives` marks
    other matching pairs (see `contrastive_loss`); `caption_rows` (long indices) limits the
    captioning loss to those rows (None: every row).
    """
    image_emb = model.encode_images(pixels)
    text_emb = model.encode_texts(text_ids, padding_mask)
    itc = contrastive_loss(model.similarity(image_emb, text_emb), positives)
    if caption_rows is not None:
        if caption_rows.numel() == 0:
            return TaskLosses(itc=itc, cap=_no_caption_loss(image_emb))
        pixels, text_ids = pixels[caption_rows], text_ids[caption_rows]
        padding_mask = padding_mask[caption_rows]
    masked = mask_caption_tokens(
        text_ids, padding_mask, spec, mask_prob=settings.mask_prob, generator=generator
    )
    logits = model.caption_logits(
        pixels, masked.input_ids, padding_mask, masked_positions=masked.masked_positions
    )
    cap = caption_loss(
        logits,
        masked.targets,
        label_smoothing=settings.label_smoothing,
        drop_worst_ratio=settings.drop_worst_ratio,
        step=step,
        drop_worst_after=settings.drop_worst_after,
    )
    return TaskLosses(itc=itc, cap=cap)


def task_losses_shared(
    model: GeoMeltModel,
    pixels: torch.Tensor,
    text_ids: torch.Tensor,
    padding_mask: torch.Tensor,
    spec: TokenizerSpec,
    *,
    step: int,
    settings: CaptionTrainingSettings = CaptionTrainingSettings(),
    generator: torch.Generator | None = None,
    positives: torch.Tensor | None = None,
    caption_rows: torch.Tensor | None = None,
) -> TaskLosses:
    """`task_losses` with one image pass shared by ITC and captioning (same values, ~40 % less
    compute on short captions).

    Under the §4.2 mask image tokens never see text, so the fused pass's image half equals the
    image-only pass: its keys/values are cached once and the corrupted text runs against them
    (gradients flow through the cache). Padded text keys need no mask here: causal rows of real
    tokens never reach the padding that follows them, and padded rows are never targets.
    """
    vision_head, language_head, _ = model.retrieval_heads()
    mlm_head = model.captioning_head()
    cache = model.new_cache()
    image_states = model.beit3(pixels=pixels, cache=cache)[0]  # (B, N+1, D)
    image_emb = unit_embedding(vision_head, image_states[:, 0])
    text_emb = unit_embedding(language_head, model.text_states(text_ids, padding_mask)[:, 0])
    itc = contrastive_loss(model.similarity(image_emb, text_emb), positives)
    if caption_rows is not None:
        if caption_rows.numel() == 0:
            return TaskLosses(itc=itc, cap=_no_caption_loss(image_emb))
        cache.reorder(caption_rows)
        text_ids, padding_mask = text_ids[caption_rows], padding_mask[caption_rows]
    masked = mask_caption_tokens(
        text_ids, padding_mask, spec, mask_prob=settings.mask_prob, generator=generator
    )
    length = text_ids.size(1)
    bias = caption_attention_bias(
        model.num_image_tokens, length, last_rows=length, device=text_ids.device
    )
    text = model.beit3(
        text_ids=masked.input_ids, text_padding_mask=padding_mask, attn_bias=bias, cache=cache
    )[0]
    logits = mlm_head(text[masked.masked_positions.bool()])
    cap = caption_loss(
        logits,
        masked.targets,
        label_smoothing=settings.label_smoothing,
        drop_worst_ratio=settings.drop_worst_ratio,
        step=step,
        drop_worst_after=settings.drop_worst_after,
    )
    return TaskLosses(itc=itc, cap=cap)


def _no_caption_loss(anchor: torch.Tensor) -> torch.Tensor:
    """A zero captioning loss for a batch with no caption rows, still part of the graph."""
    return anchor.sum() * 0.0
