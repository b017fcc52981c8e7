"""Frozen-feature retrieval floor: EfficientNet-Lite0 pooled features + MiniLM sentence
embeddings (mean pooling), two linear projections trained by InfoNCE on UCM train; scored on
val with the same metric code as `geomelt model eval`.

    python scripts/frozen_baseline.py --data ../shared/data/captions/ucm/dataset_ucm.json \
        --feature-cache /tmp/geomelt-cache --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import BertModel, BertTokenizerFast

from geomelt.model import create_model
from geomelt.model.data import load_karpathy
from geomelt.model.evaluate import scores_to_metrics
from geomelt.model.tokenizer import wordpiece_files
from geomelt.model.train import FeatureStore

logger = logging.getLogger("frozen_baseline")


@torch.no_grad()
def sentence_embeddings(texts: list[str]) -> torch.Tensor:
    folder = wordpiece_files()
    tokenizer = BertTokenizerFast.from_pretrained(str(folder))
    bert = BertModel.from_pretrained(str(folder)).eval()
    unique = sorted(set(texts))
    out = {}
    for start in range(0, len(unique), 128):
        batch = unique[start : start + 128]
        enc = tokenizer(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
        hidden = bert(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        out.update(zip(batch, pooled, strict=True))
    return torch.stack([out[t] for t in texts])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--feature-cache", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    torch.manual_seed(0)
    train, val = load_karpathy(args.data, ["train"]), load_karpathy(args.data, ["val"])
    store = FeatureStore(create_model("small-hybrid"), args.feature_cache)
    pooled = {
        name: store.load([r.path for r in recs]).float().mean(dim=(2, 3))
        for name, recs in (("train", train), ("val", val))
    }
    text = {
        name: sentence_embeddings([c for r in recs for c in r.captions])
        for name, recs in (("train", train), ("val", val))
    }
    first_caption, caption_rows = [], 0
    for r in train:
        first_caption.append((caption_rows, len(r.captions)))
        caption_rows += len(r.captions)
    image_proj = torch.nn.Linear(1280, 256)
    text_proj = torch.nn.Linear(384, 256)
    scale = torch.nn.Parameter(torch.tensor(2.659))
    params = [*image_proj.parameters(), *text_proj.parameters(), scale]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    rng = random.Random(0)  # noqa: S311 -- sampling
    for step in range(args.steps):
        images = rng.sample(range(len(train)), 256)
        captions = [first_caption[i][0] + rng.randrange(first_caption[i][1]) for i in images]
        e_i = F.normalize(image_proj(pooled["train"][images]), dim=-1)
        e_t = F.normalize(text_proj(text["train"][captions]), dim=-1)
        logits = scale.clamp(max=4.6052).exp() * e_i @ e_t.T
        labels = torch.arange(len(images))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            logger.info("step %d loss %.3f", step, float(loss))
    with torch.no_grad():
        e_i = F.normalize(image_proj(pooled["val"]), dim=-1)
        e_t = F.normalize(text_proj(text["val"]), dim=-1)
    caption_image = torch.tensor([i for i, r in enumerate(val) for _ in r.captions])
    result = {"baseline": "frozen EfficientNet-Lite0 + frozen MiniLM + 2 linear (InfoNCE)"}
    result["retrieval"] = scores_to_metrics(e_i @ e_t.T, caption_image)
    text_out = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text_out + "\n", encoding="utf-8")
    logger.info("%s", text_out)


if __name__ == "__main__":
    main()
