"""Change-search quality on real multi-date places: precision and recall of the change ranking
at a few cut-offs against a hand-labelled set, beside a pixel-difference reference.

    python -m benchmarks.change_quality --json change_quality.json
    python -m benchmarks.change_quality --sheets sheets/   # contact sheets for labelling

Ingests the places' GeoTIFFs (../shared/data/geo: NAIP North Dakota 2012 and 2020, Landsat
Pucallpa 1985 and 2020; full files, not the sample's crops) into a scratch embedded PostgreSQL
through the real path (local STAC API -> ground grid -> model), then ranks each place's cells
with the product's change search (db.queries.change: cosine distance of the two chips'
embeddings, i.e. embedding distance alone) and with the mean absolute difference of the two
co-registered chip thumbnails (128 px, grey). Labels: benchmarks/data/change_labels.json (how
they were made is in that file).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from sqlalchemy import Engine, text

from geomelt.db import EmbeddedPostgres, create_db_engine, upgrade
from geomelt.db.queries.change import ChangeQuery, DateRange, change_page
from geomelt.model import load
from geomelt.workers import ChipSettings, Pipeline, SourceSpec, ingest_once
from geomelt.workers.local import local_catalog

GEO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "geo"
LABELS = Path(__file__).resolve().parent / "data" / "change_labels.json"


def _year(year: int) -> DateRange:
    return DateRange(
        dt.datetime(year, 1, 1, tzinfo=dt.UTC),
        dt.datetime(year, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    )


# place -> (files, before year, after year, bbox west, south, east, north)
PLACES: dict[str, tuple[tuple[str, ...], int, int, tuple[float, float, float, float]]] = {
    "naip_nd": (
        ("naip_nd_20120731_m_4709963_se_14_5m.tif", "naip_nd_20200831_m_4709963_se_14_5m.tif"),
        2012,
        2020,
        (-99.3, 46.9, -99.0, 47.1),
    ),
    "landsat_pucallpa": (
        (
            "landsat_pucallpa_peru_1985_swir1-nir-red-green_4326.tif",
            "landsat_pucallpa_peru_2020_swir1-nir-red-green_4326.tif",
        ),
        1985,
        2020,
        (-75.5, -9.5, -73.5, -7.5),
    ),
}
CUTOFFS = (3, 5, 10)


def ingest(engine: Engine, model: Any, work: Path) -> None:
    folder = work / "imagery"
    folder.mkdir(parents=True)
    names = [name for files, *_ in PLACES.values() for name in files]
    for name in names:
        (folder / name).symlink_to(GEO_DIR / name)
    # The dates (Landsat: the year only) come from the manifest beside the files.
    manifest = json.loads((GEO_DIR / "manifest.json").read_text())
    entries = [entry for entry in manifest if entry["file"] in names]
    (folder / "manifest.json").write_text(json.dumps(entries))
    with local_catalog(folder, work / "catalog") as (stac_url, catalog):
        spec = SourceSpec(
            name=catalog.collection, stac_api_url=stac_url, collection=catalog.collection
        )
        settings = ChipSettings(batch_size=16)
        summary = ingest_once(
            engine, spec, Pipeline(engine, model, settings), allow_private_hosts=True
        )
    if summary.failures:
        raise SystemExit(f"ingestion failed: {summary.failures}")


def _thumb(engine: Engine, chip_id: int) -> np.ndarray[Any, Any]:
    with engine.connect() as connection:
        data = connection.execute(
            text("SELECT thumbnail FROM chips WHERE id = :id"), {"id": chip_id}
        ).scalar_one()
    return np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB"))


def place_pairs(engine: Engine, model_id: int, place: str) -> list[dict[str, Any]]:
    """Every cell of the place seen at both dates: ids, captions, both scores."""
    _, before, after, bbox = PLACES[place]
    query = ChangeQuery(model_id=model_id, before=_year(before), after=_year(after), bbox=bbox)
    with engine.connect() as connection:
        rows = change_page(connection, query, after_key=None, limit=100_000)
    pairs = []
    for rank, row in enumerate(rows, start=1):
        first, second = _thumb(engine, row.b_chip_id), _thumb(engine, row.a_chip_id)
        pixel = float(np.abs(first.mean(axis=2) - second.mean(axis=2)).mean())
        pairs.append(
            {
                "cell_id": row.cell_id,
                "rank": rank,
                "embedding_distance": float(row.score),
                "pixel_difference": pixel,
                "before_caption": row.b_caption,
                "after_caption": row.a_caption,
                "before_chip": row.b_chip_id,
                "after_chip": row.a_chip_id,
            }
        )
    return pairs


def contact_sheet(engine: Engine, pairs: list[dict[str, Any]], path: Path) -> None:
    """Pairs side by side (before | after), one row per cell in cell-id order, numbered."""
    size, label = 160, 18
    ordered = sorted(pairs, key=lambda p: p["cell_id"])
    columns = 3
    rows = -(-len(ordered) // columns)
    sheet = Image.new("RGB", (columns * (2 * size + 12), rows * (size + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, pair in enumerate(ordered):
        pair["sheet_number"] = index + 1
        x = (index % columns) * (2 * size + 12)
        y = (index // columns) * (size + label)
        for offset, chip in ((0, pair["before_chip"]), (size, pair["after_chip"])):
            image = Image.fromarray(_thumb(engine, chip)).resize((size, size))
            sheet.paste(image, (x + offset, y + label))
        draw.text((x + 2, y + 2), f"#{index + 1} {pair['cell_id']}", fill="black")
    sheet.save(path)


def precision_recall(
    pairs: list[dict[str, Any]], labels: dict[str, bool], key: str
) -> dict[str, dict[str, float]]:
    labelled = [p for p in pairs if p["cell_id"] in labels]
    ranked = sorted(labelled, key=lambda p: -p[key])
    changed = sum(labels[p["cell_id"]] for p in labelled)
    out = {}
    for k in CUTOFFS:
        hits = sum(labels[p["cell_id"]] for p in ranked[:k])
        out[f"@{k}"] = {
            "precision": hits / min(k, len(ranked)) if ranked else 0.0,
            "recall": hits / changed if changed else 0.0,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="geomelt-small")
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--sheets", type=Path, help="write contact sheets here and stop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model = load(args.model)
    root = Path(tempfile.mkdtemp(prefix="geomelt-change-"))
    started = time.perf_counter()
    with EmbeddedPostgres(root / "pg") as server:
        url = server.database_url("postgres")
        upgrade(url)
        engine = create_db_engine(url)
        ingest(engine, model, root)
        with engine.connect() as connection:
            model_id = int(connection.execute(text("SELECT min(id) FROM models")).scalar_one())
        results: dict[str, Any] = {"model": args.model, "places": {}}
        labels_doc = json.loads(args.labels.read_text()) if args.labels.is_file() else {}
        for place in PLACES:
            pairs = place_pairs(engine, model_id, place)
            if args.sheets:
                args.sheets.mkdir(parents=True, exist_ok=True)
                contact_sheet(engine, pairs, args.sheets / f"{place}.png")
                (args.sheets / f"{place}.json").write_text(json.dumps(pairs, indent=1))
                continue
            labels = {k: bool(v) for k, v in labels_doc.get("places", {}).get(place, {}).items()}
            results["places"][place] = {
                "cells": len(pairs),
                "labelled": sum(p["cell_id"] in labels for p in pairs),
                "changed": sum(labels.get(p["cell_id"], False) for p in pairs),
                "change_search": precision_recall(pairs, labels, "embedding_distance"),
                "pixel_difference": precision_recall(pairs, labels, "pixel_difference"),
            }
        engine.dispose()
    if args.sheets:
        return
    results["seconds"] = round(time.perf_counter() - started, 1)
    header = f"{'place':18} {'cells':>5} {'chg':>4}  {'method':18}" + "".join(
        f"  P{c:<3} R{c:<3}" for c in CUTOFFS
    )
    print(header)
    for place, result in results["places"].items():
        for method in ("change_search", "pixel_difference"):
            scores = [result[method][f"@{c}"] for c in CUTOFFS]
            cells = "".join(f"  {s['precision']:.2f} {s['recall']:.2f}" for s in scores)
            print(f"{place:18} {result['labelled']:>5} {result['changed']:>4}  {method:18}{cells}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
