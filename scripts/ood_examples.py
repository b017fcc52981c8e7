"""Captions and zero-shot classes for the first chips of out-of-domain GeoTIFFs (model card table).

    python scripts/ood_examples.py --model geomelt-small \
        ../shared/data/geo/s2_demmin_20230603_10m_b04b03b02b08_4326.tif ...

Each file goes through what `geomelt demo` / `ingest` do with a local folder (STAC item from
`build_local_items`, RGB bands and nodata mask from `open_scene`, fixed radiometry), so the model
sees the chips ingestion would give it; the top row of 224 px chips is used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from geomelt.model.api import load
from geomelt.model.data import class_prompt_name, load_scenes
from geomelt.workers.local import build_local_items
from geomelt.workers.radiometry import to_uint8_rgb
from geomelt.workers.read import open_scene

CHIP = 224


def local_items(files: list[Path], served: Path) -> dict[Path, dict[str, Any]]:
    """The STAC item of each file, built per folder (so its manifest.json band names count)."""
    items = {}
    for folder in sorted({path.parent for path in files}):
        catalog = build_local_items(
            folder, served, str(served), collection="ood", updated=dt.datetime.now(dt.UTC)
        )
        by_id = {item["id"]: item for item in catalog.items}
        skipped = {s.path.name: s.reason for s in catalog.skipped}
        for path in (p for p in files if p.parent == folder):
            if path.stem not in by_id:
                reason = skipped.get(path.name, "not a GeoTIFF")
                raise SystemExit(f"{path}: cannot be ingested ({reason})")
            items[path] = by_id[path.stem]
    return items


def top_row_chips(item: dict[str, Any], most: int) -> list[np.ndarray]:
    with open_scene(item, (), None) as raster:
        strip = raster.read_rows(0, min(CHIP, raster.height_px))
        columns = range(0, min(most, raster.width_px // CHIP) * CHIP, CHIP)
        return [to_uint8_rgb(strip[:, :, x : x + CHIP], raster.radiometry)[0] for x in columns]


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
    records = [r for scenes in args.scenes for r in load_scenes(scenes, "all")]
    labels = sorted({class_prompt_name(r.label) for r in records if r.label is not None})
    rows = []
    with tempfile.TemporaryDirectory() as served:
        for path, item in local_items(args.files, Path(served)).items():
            pixels = np.stack(top_row_chips(item, args.chips))
            rows.append({
                "file": path.name,
                "captions": geomelt.caption(pixels),
                "zero_shot": geomelt.zero_shot(pixels, labels).labels,
            })  # fmt: skip
    result = {"model": geomelt.version, "labels": len(labels), "rows": rows}
    sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
