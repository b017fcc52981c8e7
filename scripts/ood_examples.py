"""Captions and zero-shot classes for the first chips of out-of-domain GeoTIFFs (model card table).

    python scripts/ood_examples.py --model geomelt-small \
        ../shared/data/geo/s2_demmin_20230603_10m_b04b03b02b08_4326.tif ...

Reads the top row of 224 px chips (bands 1-3, or band 1 as grey) and maps them to uint8 RGB
with the workers' fixed radiometry, so the model sees what ingestion would give it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from geomelt.model.api import load
from geomelt.model.data import class_prompt_name
from geomelt.workers.radiometry import choose_radiometry, to_uint8_rgb

CHIP = 224


def top_row_chips(path: Path, most: int) -> list[np.ndarray]:
    with rasterio.open(path) as src:
        bands = [1, 2, 3] if src.count >= 3 else [1]
        radiometry = choose_radiometry(src.dtypes[0])
        chips = []
        for col in range(min(most, src.width // CHIP)):
            window = rasterio.windows.Window(col * CHIP, 0, CHIP, CHIP)
            data = src.read(bands, window=window, masked=True).astype("float32").filled(np.nan)
            chips.append(to_uint8_rgb(data, radiometry)[0])
    return chips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", default="geomelt-small")
    parser.add_argument("--chips", type=int, default=3, help="chips per file, from the left")
    parser.add_argument(
        "--scenes",
        type=Path,
        nargs="*",
        default=[Path("../shared/data/scenes/AID"), Path("../shared/data/scenes/RSSCN7")],
        help="class-folder datasets whose class names are the zero-shot labels",
    )
    args = parser.parse_args()
    geomelt = load(args.model)
    folders = [sub for scenes in args.scenes for sub in scenes.iterdir() if sub.is_dir()]
    labels = sorted({class_prompt_name(folder.name) for folder in folders})
    rows = []
    for path in args.files:
        chips = top_row_chips(path, args.chips)
        pixels = np.stack(chips)
        rows.append({
            "file": path.name,
            "captions": geomelt.caption(pixels),
            "zero_shot": geomelt.zero_shot(pixels, labels).labels,
        })  # fmt: skip
    result = {"model": geomelt.version, "labels": len(labels), "rows": rows}
    sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
