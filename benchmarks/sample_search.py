"""Search precision on real imagery: P@5 and nDCG@10 of plain-language queries over the sample
GeoTIFFs shipped with geomelt (geomelt/sample), through the product end to end.

The sample is served as a local STAC API and ingested by the workers' pipeline with its default
chip settings (caption beam 3, 32 tokens) into a scratch embedded PostgreSQL, exactly as
`geomelt demo` does; then each query of `benchmarks/sample_queries.json` goes to
`GET /search?q=...&limit=10` of the real app (the engine's ranking: vector neighbours fused
with caption keyword ranks by RRF); the exact-cosine top 10 of the query vector alone is
reported beside it ("vec"). A result is relevant when the query lists a point
(lon, lat) inside the chip's footprint for the chip's source file: the labels were made by
looking at every chip (`--dump DIR` writes them as PNGs with their ids, footprints and captions),
and points survive a change of the chip grid better than chip ids do. Queries with nothing
relevant in the sample are skipped from the means (none are, today).

    python -m benchmarks.sample_search --json out/sample_search.json
    python -m benchmarks.sample_search --no-fusion   # GeoMELT's embedding alone, for comparison
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from litestar.testing import TestClient
from PIL import Image, ImageDraw
from sqlalchemy import text

from geomelt import SAMPLE_DIR
from geomelt.db import EmbeddedPostgres, create_db_engine, upgrade
from geomelt.engine import AppDeps, EngineConfig, create_app
from geomelt.model import load
from geomelt.workers.local import local_catalog
from geomelt.workers.oneshot import ingest_once
from geomelt.workers.pipeline import ChipSettings, Pipeline
from geomelt.workers.spec import SourceSpec

LABELS = Path(__file__).resolve().parent / "sample_queries.json"


def _inside(point: tuple[float, float], ring: list[list[float]]) -> bool:
    """Ray casting: is (x, y) inside the closed polygon ring (lon/lat)?"""
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _relevant(feature: dict[str, Any], query: dict[str, Any]) -> bool:
    ring = feature["geometry"]["coordinates"][0]
    source = feature["properties"]["geomelt:source_item"]
    return any(
        source == label["item"] and _inside((label["lon"], label["lat"]), ring)
        for label in query["relevant"]
    )


def _ndcg_at_10(gains: list[int], relevant_count: int) -> float:
    dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(gains[:10]))
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(10, relevant_count)))
    return dcg / ideal if ideal else 0.0


def _dump(url: str, folder: Path) -> None:
    """Every chip as a PNG named by its item id, plus chips.json (caption, footprint centre)."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(url)
    rows = []
    with engine.connect() as connection:
        for row in connection.execute(
            text(
                "SELECT s.item_id || '_' || c.row || '_' || c.col AS id, c.caption, c.thumbnail, "
                "c.valid_fraction, c.geometry FROM chips c JOIN scenes s ON s.id = c.scene_id "
                "ORDER BY 1"
            )
        ):
            record = dict(row._mapping)
            ring = record.pop("geometry")["coordinates"][0][:-1]
            record["lon"] = sum(p[0] for p in ring) / len(ring)
            record["lat"] = sum(p[1] for p in ring) / len(ring)
            rows.append(record)
    engine.dispose()
    for row in rows:
        image = Image.open(io.BytesIO(row.pop("thumbnail"))).convert("RGB")
        image.save(folder / f"{row['id']}.png")
    sheet = Image.new("RGB", (8 * 160, math.ceil(len(rows) / 8) * 150), "white")
    for k, row in enumerate(rows):
        tile = Image.open(folder / f"{row['id']}.png").resize((128, 128))
        x, y = (k % 8) * 160, (k // 8) * 150
        sheet.paste(tile, (x, y))
        ImageDraw.Draw(sheet).text((x, y + 130), f"{k}", fill="black")
        row["sheet_index"] = k
    sheet.save(folder / "sheet.png")
    (folder / "chips.json").write_text(json.dumps(rows, indent=1, default=float))


def _vector_top10(model: Any, url: str, query: str) -> list[dict[str, Any]]:
    """The 10 chips nearest the query vector by exact cosine, no keyword part, as features."""
    vector = np.asarray(model.encode_queries([query])[0], dtype=np.float32)
    engine = create_db_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT s.item_id, c.geometry FROM chips c JOIN scenes s ON s.id = c.scene_id "
                "ORDER BY c.embedding::vector <=> CAST(:q AS vector) LIMIT 10"
            ),
            {"q": "[" + ",".join(f"{x:.6f}" for x in vector) + "]"},
        ).all()
    engine.dispose()
    return [{"geometry": g, "properties": {"geomelt:source_item": i}} for i, g in rows]


def run(args: argparse.Namespace) -> dict[str, Any]:
    model = load(args.model)
    if args.no_fusion:
        model.fusion = None
    queries = json.loads(args.labels.read_text())["queries"]
    with tempfile.TemporaryDirectory(prefix="geomelt-sample-search-") as scratch:
        server = EmbeddedPostgres(Path(scratch) / "pg")
        url = server.start().url
        try:
            upgrade(url)
            engine = create_db_engine(url)
            started = time.perf_counter()
            with local_catalog(SAMPLE_DIR, Path(scratch) / "work") as (stac_url, catalog):
                spec = SourceSpec(
                    name=catalog.collection, stac_api_url=stac_url, collection=catalog.collection
                )
                summary = ingest_once(
                    engine, spec, Pipeline(engine, model, ChipSettings()), allow_private_hosts=True
                )
            ingest_s = time.perf_counter() - started
            engine.dispose()
            if args.dump is not None:
                _dump(url, args.dump)
            config = EngineConfig(database_url=url, secret=b"benchmark")
            rows = []
            with TestClient(create_app(AppDeps(config=config, load_model=lambda: model))) as client:
                for query in queries:
                    response = client.get("/search", params={"q": query["q"], "limit": "10"})
                    response.raise_for_status()
                    features = response.json()["features"]
                    gains = [int(_relevant(f, query)) for f in features]
                    vector_gains = [
                        int(_relevant(f, query)) for f in _vector_top10(model, url, query["q"])
                    ]
                    rows.append(
                        {
                            "q": query["q"],
                            "relevant_in_sample": len(query["relevant"]),
                            "p_at_5": sum(gains[:5]) / 5,
                            "ndcg_at_10": _ndcg_at_10(gains, len(query["relevant"])),
                            "vector_p_at_5": sum(vector_gains[:5]) / 5,
                            "vector_ndcg_at_10": _ndcg_at_10(vector_gains, len(query["relevant"])),
                            "top5": [
                                (f["id"], f["properties"].get("caption"), g)
                                for f, g in zip(features[:5], gains[:5], strict=True)
                            ],
                        }
                    )
        finally:
            server.stop()
    scored = [r for r in rows if r["relevant_in_sample"]]
    return {
        "model": model.version,
        "fusion": model.fusion.spec.to_dict() if model.fusion is not None else None,
        "chips": summary.chips,
        "scenes": summary.scenes_done,
        "ingest_seconds": round(ingest_s, 1),
        "mean_p_at_5": float(np.mean([r["p_at_5"] for r in scored])),
        "mean_ndcg_at_10": float(np.mean([r["ndcg_at_10"] for r in scored])),
        "mean_vector_p_at_5": float(np.mean([r["vector_p_at_5"] for r in scored])),
        "mean_vector_ndcg_at_10": float(np.mean([r["vector_ndcg_at_10"] for r in scored])),
        "queries": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="geomelt-small")
    parser.add_argument("--no-fusion", action="store_true", help="rank by GeoMELT alone")
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--dump", type=Path, default=None, help="write every chip here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report = run(args)
    out = sys.stdout
    out.write(
        f"model {report['model']} (fusion {'off' if report['fusion'] is None else 'on'}), "
        f"{report['chips']} chips of {report['scenes']} sample scenes, ingested in "
        f"{report['ingest_seconds']} s\n"
    )
    out.write(
        f"{'query':<40} {'relevant':>8} {'P@5':>5} {'nDCG@10':>8} {'P@5 vec':>8} {'nDCG vec':>8}\n"
    )
    for row in report["queries"]:
        out.write(
            f"{row['q']:<40} {row['relevant_in_sample']:>8} {row['p_at_5']:>5.2f} "
            f"{row['ndcg_at_10']:>8.3f} {row['vector_p_at_5']:>8.2f} "
            f"{row['vector_ndcg_at_10']:>8.3f}\n"
        )
    out.write(
        f"{'mean':<49} {report['mean_p_at_5']:>5.3f} {report['mean_ndcg_at_10']:>8.3f} "
        f"{report['mean_vector_p_at_5']:>8.3f} {report['mean_vector_ndcg_at_10']:>8.3f}\n"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
