"""Precision@10 of natural-language search on labelled aerial images, through the real API.

Every image of a labelled split (UCM-captions `val` by default: 210 images of 21 land-use
classes) becomes one chip: captioned and embedded by the model and stored through the ingestion
write path (register_model, upsert_scene, upsert_chips), each at its own spot on a grid of
footprints. Then, per class, a plain-language query (e.g. "dense residential area") goes to
`GET /search?q=...&limit=10` of the real Litestar app, and precision@10 counts the results of
that class. Vector-only precision (cosine top 10, no keyword part) is reported beside it, and
chance is the class's share of the split.

    python -m benchmarks.search_precision --model geomelt-small --json out/precision.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from litestar.testing import TestClient
from PIL import Image

from geomelt.db import EmbeddedPostgres, create_db_engine, unit_of_work, upgrade
from geomelt.db.queries import ChipRecord, SceneRecord, upsert_chips, upsert_scene
from geomelt.db.sources import create_source
from geomelt.engine import AppDeps, EngineConfig, create_app
from geomelt.model import load
from geomelt.workers.pipeline import register_geomelt

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/captions/ucm/dataset_ucm.json"

# One everyday phrase per UCM class: what a person would type, not the class token.
QUERIES = {
    "agricultural": "farmland with crop fields",
    "airplane": "airplanes parked at an airport",
    "baseballdiamond": "a baseball field",
    "beach": "a sandy beach by the sea",
    "buildings": "large buildings in a city",
    "chaparral": "dry land covered with shrubs",
    "denseresidential": "dense residential area",
    "forest": "a dense forest",
    "freeway": "a freeway with cars",
    "golfcourse": "a golf course",
    "harbor": "boats in a harbour",
    "intersection": "a road intersection",
    "mediumresidential": "houses with gardens along streets",
    "mobilehomepark": "a mobile home park",
    "overpass": "a highway overpass",
    "parkinglot": "a parking lot full of cars",
    "river": "a river",
    "runway": "an airport runway",
    "sparseresidential": "a few scattered houses among trees",
    "storagetanks": "white storage tanks",
    "tenniscourt": "a tennis court",
}
CHIP_DEG = 0.01
WHEN = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def _images(data: Path, split: str) -> list[dict[str, Any]]:
    entries = json.loads(data.read_text())["images"]
    return [entry for entry in entries if entry["split"] == split]


def _ingest(
    database_url: str, model: Any, entries: list[dict[str, Any]], root: Path, batch: int
) -> dict[str, str]:
    """Store one chip per image; returns item id -> class."""
    engine = create_db_engine(database_url)
    classes: dict[str, str] = {}
    with unit_of_work(engine) as connection:
        model_id = register_geomelt(connection, model)
        source = create_source(
            connection,
            # Never polled (chips are written directly); sources take http(s) URLs only.
            {"name": "labelled", "stac_api_url": "http://127.0.0.1:1/", "collection": "ucm"},
            allow_private_hosts=True,
        )
    for start in range(0, len(entries), batch):
        group = entries[start : start + batch]
        pixels = np.stack(
            [
                np.asarray(Image.open(root / e["filename"]).convert("RGB").resize((224, 224)))
                for e in group
            ]
        )
        # As the workers do (ChipSettings: beam 3, 32 tokens), then the search vectors, which
        # include each image's own caption when the model carries fusion heads.
        captions = model.caption(pixels, beams=3, max_len=32)
        vectors = np.asarray(model.search_vectors(pixels, captions), dtype=np.float32)
        with unit_of_work(engine) as connection:
            records = []
            for offset, (entry, vector, caption) in enumerate(
                zip(group, vectors, captions, strict=True)
            ):
                index = start + offset
                west, south = (index % 20) * CHIP_DEG, (index // 20) * CHIP_DEG
                item_id = Path(entry["filename"]).stem
                scene_id, _ = upsert_scene(
                    connection,
                    SceneRecord(
                        source_id=source["id"],
                        collection="ucm",
                        item_id=item_id,
                        item={"id": item_id, "type": "Feature", "properties": {}},
                        datetime=WHEN,
                        item_version="1",
                        bbox_lonlat=(west, south, west + CHIP_DEG, south + CHIP_DEG),
                    ),
                )
                ring = [
                    (west, south),
                    (west + CHIP_DEG, south),
                    (west + CHIP_DEG, south + CHIP_DEG),
                    (west, south + CHIP_DEG),
                ]
                records.append(
                    ChipRecord(
                        scene_id=scene_id,
                        model_id=model_id,
                        row=0,
                        col=0,
                        datetime=WHEN,
                        footprint_lonlat=ring,
                        caption=caption,
                        embedding=vector,
                        window_px=(0, 0, 256, 256),
                        valid_fraction=1.0,
                    )
                )
                classes[f"{item_id}_0_0"] = entry["class"]
            upsert_chips(connection, records)
    engine.dispose()
    return classes


def _vector_top10(model: Any, database_url: str, query: str) -> list[str]:
    engine = create_db_engine(database_url)
    vector = np.asarray(model.encode_queries([query])[0], dtype=np.float32)
    from sqlalchemy import text

    with unit_of_work(engine) as connection:
        rows = connection.execute(
            text(
                "SELECT s.item_id FROM chips c JOIN scenes s ON s.id = c.scene_id "
                "ORDER BY c.embedding::vector <=> CAST(:q AS vector) LIMIT 10"
            ),
            {"q": "[" + ",".join(f"{x:.6f}" for x in vector) + "]"},
        ).scalars()
        ids = [f"{item_id}_0_0" for item_id in rows]
    engine.dispose()
    return ids


def run(args: argparse.Namespace) -> dict[str, Any]:
    model = load(args.model)
    entries = _images(args.data, args.split)
    root = args.images_root or args.data.parent / "images"
    with tempfile.TemporaryDirectory(prefix="geomelt-precision-") as scratch:
        server = EmbeddedPostgres(Path(scratch)) if args.database_url is None else None
        url = server.start().url if server is not None else args.database_url
        try:
            upgrade(url)
            started = time.perf_counter()
            classes = _ingest(url, model, entries, root, args.batch_size)
            ingest_s = time.perf_counter() - started
            share = {c: sum(v == c for v in classes.values()) / len(classes) for c in QUERIES}
            config = EngineConfig(database_url=url, secret=b"benchmark")
            rows = []
            with TestClient(create_app(AppDeps(config=config, load_model=lambda: model))) as client:
                for target, query in QUERIES.items():
                    response = client.get("/search", params={"q": query, "limit": "10"})
                    response.raise_for_status()
                    hybrid = [f["id"] for f in response.json()["features"]]
                    vector_only = _vector_top10(model, url, query)
                    rows.append(
                        {
                            "class": target,
                            "query": query,
                            "precision_at_10": sum(classes.get(i) == target for i in hybrid) / 10,
                            "vector_precision_at_10": sum(
                                classes.get(i) == target for i in vector_only
                            )
                            / 10,
                            "chance": share[target],
                        }
                    )
        finally:
            if server is not None:
                server.stop()
    return {
        "model": model.version,
        "split": args.split,
        "images": len(entries),
        "ingest_seconds": round(ingest_s, 1),
        "mean_precision_at_10": float(np.mean([r["precision_at_10"] for r in rows])),
        "mean_vector_precision_at_10": float(np.mean([r["vector_precision_at_10"] for r in rows])),
        "mean_chance": float(np.mean([r["chance"] for r in rows])),
        "results": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="geomelt-small")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images-root", type=Path, default=None)
    parser.add_argument("--split", default="val")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report = run(args)
    print(
        f"model {report['model']}, {report['images']} {report['split']} images, "
        f"ingested in {report['ingest_seconds']} s"
    )
    print(f"{'class':<18} {'query':<36} {'P@10 (q)':>9} {'P@10 vec':>9} {'chance':>7}")
    for row in report["results"]:
        print(
            f"{row['class']:<18} {row['query']:<36} {row['precision_at_10']:>9.2f} "
            f"{row['vector_precision_at_10']:>9.2f} {row['chance']:>7.3f}"
        )
    print(
        f"{'mean':<55} {report['mean_precision_at_10']:>9.3f} "
        f"{report['mean_vector_precision_at_10']:>9.3f} {report['mean_chance']:>7.3f}"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
