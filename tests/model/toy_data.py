"""Small on-disk datasets for training/eval tests: a Karpathy JSON and a scene folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _image(path: Path, colour: tuple[int, int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (48, 48, 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def karpathy_dataset(root: Path, per_colour: int = 4) -> Path:
    """root/dataset.json + root/images/: per colour `per_colour` images, train and val."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    n = 0
    for name, colour in COLOURS.items():
        for k in range(per_colour):
            filename = f"{n}.png"
            _image(root / "images" / filename, colour, n)
            captions = [
                f"a {name} square",
                f"this image is {name}",
                f"a {name} square",  # duplicate strings exist in real data (UCM)
                f"an aerial view of something {name}",
                f"a {name} area on the left",
            ]
            entries.append(
                {
                    "filename": filename,
                    "imgid": n,
                    "split": "val" if k == 0 else "train",
                    "class": name,
                    "sentences": [{"raw": c, "tokens": c.split()} for c in captions],
                }
            )
            n += 1
    path = root / "dataset.json"
    path.write_text(json.dumps({"dataset": "toy", "images": entries}), encoding="utf-8")
    return path


def scene_dataset(root: Path, per_class: int = 5) -> Path:
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            _image(root / name / f"{name}_{k}.jpg", colour, k)
    return root
