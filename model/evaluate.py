"""Evaluation (spec §7): retrieval R@K/mR, coco-caption metrics, zero-shot accuracy.

Image inputs are produced by a callable `images(indices) -> tensor` so the same code runs on
pixels (a loaded model) or on cached stem features (during training).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .api import GeoMelt
from .data import ImageRecord, class_prompt_name, load_image, stack_images
from .decoding import caption_texts
from .errors import ConfigError
from .image import preprocess_images
from .metrics import retrieval_metrics
from .network import GeoMeltModel
from .tokenizer import TextTokenizer

__all__ = [
    "ZERO_SHOT_TEMPLATES",
    "caption_images",
    "caption_metrics",
    "image_inputs_from_files",
    "retrieval_eval",
    "search_retrieval_eval",
    "zero_shot_eval",
]

logger = logging.getLogger(__name__)

ImageInputs = Callable[[Sequence[int]], torch.Tensor]
ZERO_SHOT_TEMPLATES = ("a satellite image of {}.", "an aerial image of {}.")
TEXT_MAX_LEN = 64


def image_inputs_from_files(
    records: Sequence[ImageRecord], img_size: int, device: torch.device | str = "cpu"
) -> ImageInputs:
    def inputs(indices: Sequence[int]) -> torch.Tensor:
        arrays = [load_image(records[i].path, img_size) for i in indices]
        return preprocess_images(stack_images(arrays), img_size, device=device)

    return inputs


@torch.no_grad()
def _embed_images(
    model: GeoMeltModel, images: ImageInputs, count: int, batch_size: int
) -> torch.Tensor:
    chunks = []
    for start in range(0, count, batch_size):
        x = images(range(start, min(count, start + batch_size)))
        chunks.append(model.encode_images(x.to(model.beit3.text_embed.weight.dtype)).float().cpu())
    return torch.cat(chunks)


@torch.no_grad()
def _embed_texts(
    model: GeoMeltModel, tokenizer: TextTokenizer, texts: Sequence[str], batch_size: int
) -> torch.Tensor:
    """Unit embeddings of `texts`; identical token sequences get bit-identical embeddings."""
    device = model.beit3.text_embed.weight.device
    rows = tokenizer.pieces(list(texts))
    unique: dict[tuple[int, ...], int] = {}
    index = [unique.setdefault(tuple(r), len(unique)) for r in rows]
    distinct = list(unique)
    chunks = []
    for start in range(0, len(distinct), batch_size):
        batch = distinct[start : start + batch_size]
        spec = tokenizer.spec
        width = min(TEXT_MAX_LEN, max(len(r) for r in batch) + 2)
        ids = torch.full((len(batch), width), spec.pad_id, dtype=torch.long)
        padding = torch.ones((len(batch), width), dtype=torch.bool)
        for i, r in enumerate(batch):
            row = [spec.bos_id, *r[: width - 2], spec.eos_id]
            ids[i, : len(row)] = torch.tensor(row)
            padding[i, : len(row)] = False
        chunks.append(model.encode_texts(ids.to(device), padding.to(device)).float().cpu())
    return torch.cat(chunks)[torch.tensor(index)]


def retrieval_eval(
    model: GeoMeltModel,
    tokenizer: TextTokenizer,
    records: Sequence[ImageRecord],
    images: ImageInputs,
    *,
    batch_size: int = 32,
) -> dict[str, Any]:
    """TR/IR R@1/5/10 and mR (spec §7.1) under both tie rules; headline = random expectation."""
    image_emb = _embed_images(model, images, len(records), batch_size)
    texts = [c for r in records for c in r.captions]
    caption_image = torch.tensor([i for i, r in enumerate(records) for _ in r.captions])
    text_emb = _embed_texts(model, tokenizer, texts, batch_size)
    return scores_to_metrics(image_emb @ text_emb.T, caption_image)


@torch.no_grad()
def search_retrieval_eval(
    geomelt: GeoMelt,
    records: Sequence[ImageRecord],
    captions: Sequence[str],
    *,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Retrieval ranked exactly as the search engine ranks: cosine between what the workers
    store per image (`GeoMelt.search_vectors`, given each image's own generated caption) and
    what the engine queries with (`GeoMelt.encode_queries`)."""
    if len(captions) != len(records):
        raise ConfigError(
            f"{len(captions)} generated captions for {len(records)} images; caption every image"
        )
    size = geomelt.config.vision.img_size
    image_chunks = []
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        pixels = stack_images([load_image(r.path, size) for r in batch])
        image_chunks.append(
            geomelt.search_vectors(pixels, list(captions[start : start + batch_size]))
        )
    texts = [c for r in records for c in r.captions]
    text_chunks = [
        geomelt.encode_queries(texts[start : start + 4 * batch_size])
        for start in range(0, len(texts), 4 * batch_size)
    ]
    caption_image = torch.tensor([i for i, r in enumerate(records) for _ in r.captions])
    return scores_to_metrics(torch.cat(image_chunks) @ torch.cat(text_chunks).T, caption_image)


def scores_to_metrics(scores: torch.Tensor, caption_image: torch.Tensor) -> dict[str, Any]:
    random_rule = retrieval_metrics(scores, caption_image, tie_rule="random")
    stable_rule = retrieval_metrics(scores, caption_image, tie_rule="stable")

    def named(m: dict[str, float]) -> dict[str, float]:
        out = {k.upper(): round(v, 2) for k, v in m.items() if k != "mr"}
        out["mR"] = round(m["mr"], 2)
        return out

    return {
        **named(random_rule),
        "tie_rule": "random (exact expectation)",
        "stable": named(stable_rule),
        "images": int(scores.size(0)),
        "captions": int(scores.size(1)),
    }


@torch.no_grad()
def caption_images(
    model: GeoMeltModel,
    tokenizer: TextTokenizer,
    images: ImageInputs,
    count: int,
    *,
    beams: int = 3,
    max_len: int = 32,
    length_penalty: float = 0.6,
    batch_size: int = 16,
    no_repeats: bool = True,
) -> list[str]:
    dtype = model.beit3.text_embed.weight.dtype
    captions: list[str] = []
    for start in range(0, count, batch_size):
        x = images(range(start, min(count, start + batch_size))).to(dtype)
        captions += caption_texts(
            model,
            tokenizer,
            x,
            beams=beams,
            max_len=max_len,
            length_penalty=length_penalty,
            no_repeats=no_repeats,
        )
    return captions


def caption_metrics(
    candidates: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D) exactly as pycocoevalcap 1.2 (PTB-tokenised)."""
    if shutil.which("java") is None:
        raise ConfigError(
            "captioning metrics need Java for the PTB tokenizer and METEOR; install a JRE "
            "(e.g. `apt-get install -y default-jre-headless`) so that `java` is on PATH"
        )
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as exc:
        raise ConfigError(
            "captioning metrics need pycocoevalcap; `pip install pycocoevalcap==1.2`"
        ) from exc
    gts = {i: [{"caption": c} for c in refs] for i, refs in enumerate(references)}
    res = {i: [{"caption": c}] for i, c in enumerate(candidates)}
    tokenizer = PTBTokenizer()
    gts_tok, res_tok = tokenizer.tokenize(gts), tokenizer.tokenize(res)
    result: dict[str, Any] = {}
    bleu, _ = Bleu(4).compute_score(gts_tok, res_tok, verbose=0)
    for n, value in enumerate(bleu, start=1):
        result[f"BLEU-{n}"] = float(value)
    result["METEOR"] = float(Meteor().compute_score(gts_tok, res_tok)[0])
    result["ROUGE-L"] = float(Rouge().compute_score(gts_tok, res_tok)[0])
    result["CIDEr"] = float(Cider().compute_score(gts_tok, res_tok)[0])
    result["S_m"] = (result["BLEU-4"] + result["METEOR"] + result["ROUGE-L"] + result["CIDEr"]) / 4
    return result


@torch.no_grad()
def zero_shot_eval(
    model: GeoMeltModel,
    tokenizer: TextTokenizer,
    records: Sequence[ImageRecord],
    images: ImageInputs,
    *,
    templates: Sequence[str] = ZERO_SHOT_TEMPLATES,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Top-1 accuracy: each class = mean of its prompt embeddings (renormalised)."""
    labels = sorted({r.label for r in records if r.label is not None})
    if not labels or any(r.label is None for r in records):
        raise ConfigError("zero-shot evaluation needs a class label on every image")
    prompts = [t.format(class_prompt_name(label)) for label in labels for t in templates]
    text = _embed_texts(model, tokenizer, prompts, batch_size).view(len(labels), len(templates), -1)
    classes = torch.nn.functional.normalize(text.mean(dim=1), dim=-1)
    image_emb = _embed_images(model, images, len(records), batch_size)
    predicted = (image_emb @ classes.T).argmax(dim=1).tolist()
    truth = [labels.index(r.label) for r in records if r.label is not None]
    per_class: dict[str, float] = {}
    for k, label in enumerate(labels):
        members = [p for p, t in zip(predicted, truth, strict=True) if t == k]
        per_class[label] = round(100.0 * sum(p == k for p in members) / len(members), 2)
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    return {
        "accuracy": round(100.0 * correct / len(records), 2),
        "per_class": per_class,
        "images": len(records),
        "classes": len(labels),
        "templates": list(templates),
    }
