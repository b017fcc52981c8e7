"""Ceiling of a frozen stem on scene classification: a supervised linear probe (softmax
regression on standardised, pooled EfficientNet-Lite0 features) trained on a scene dataset's
train part and scored on its val part (the parts `geomelt model eval-zeroshot` uses).

Zero-shot classification through a frozen stem cannot beat this probe, which sees every label.

    python scripts/frozen_probe.py --images ../shared/data/scenes/RSSCN7 \
        --feature-cache /tmp/geomelt-cache
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from geomelt.model import create_model
from geomelt.model.data import load_scenes
from geomelt.model.train import FeatureStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--feature-cache", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    torch.manual_seed(0)
    store = FeatureStore(create_model("small-hybrid"), args.feature_cache)
    parts = {part: load_scenes(args.images, part) for part in ("train", "val")}
    labels = sorted({r.label for r in parts["train"]})
    x = {
        p: store.load([r.path for r in recs]).float().mean(dim=(2, 3)) for p, recs in parts.items()
    }
    y = {p: torch.tensor([labels.index(r.label) for r in recs]) for p, recs in parts.items()}
    mean, std = x["train"].mean(0), x["train"].std(0) + 1e-6
    probe = torch.nn.Linear(x["train"].size(1), len(labels))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=1e-3)
    for _ in range(args.steps):
        loss = F.cross_entropy(probe((x["train"] - mean) / std), y["train"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = probe((x["val"] - mean) / std).argmax(1)
    accuracy = 100.0 * float((predicted == y["val"]).float().mean())
    sys.stdout.write(
        json.dumps({"images": str(args.images), "probe_accuracy": round(accuracy, 2)}) + "\n"
    )


if __name__ == "__main__":
    main()
