"""Ingestion throughput per stage on the real GeoTIFF set (../shared/data/geo), on CPU.

Serves the 22 files as COGs + STAC items (rustac on loopback, a Range static server), ingests
them into a throw-away embedded PostgreSQL, and reports for each stage (STAC search, read, chip,
embed, caption, store) the seconds, chips and chips per second.

    python -m benchmarks.ingest_throughput [--model tiny-random] [--chip-size 224]
        [--beams 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from geomelt.db import EmbeddedPostgres, create_db_engine, unit_of_work, upgrade
from geomelt.model import load
from geomelt.workers import ChipSettings, Pipeline, SourceSpec, add_source, poll_source
from tests.workers.fixtures import COLLECTION, build_catalog, manifest, rustac_server, static_server

STAGES = ("search", "read", "chip", "embed", "caption", "store")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--chip-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--beams", type=int, default=3)
    parser.add_argument("--caption-max-len", type=int, default=32)
    parser.add_argument("--json", type=Path, default=Path("ingest_throughput.json"))
    args = parser.parse_args()

    files = tuple(entry["file"] for entry in manifest())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        with EmbeddedPostgres(root / "pg") as server, static_server(root / "data") as files_url:
            upgrade(server.url)
            engine = create_db_engine(server.url)
            catalog = build_catalog(root, files_url, files)
            with rustac_server(catalog.items_path) as stac_url:
                model = load(args.model)
                settings = ChipSettings(
                    batch_size=args.batch_size,
                    caption_beams=args.beams,
                    caption_max_len=args.caption_max_len,
                )
                pipeline = Pipeline(engine, model, settings)
                spec = SourceSpec(
                    name="bench",
                    stac_api_url=stac_url,
                    collection=COLLECTION,
                    chip_size_px=args.chip_size,
                )
                with unit_of_work(engine) as connection:
                    source_id = add_source(connection, spec, allow_private_hosts=True)
                started = time.perf_counter()
                polled = poll_source(engine, source_id, enqueue=None, page_size=10)
                search_s = time.perf_counter() - started
                failures: dict[str, str] = {}
                total_started = time.perf_counter()
                chips = skipped = 0
                for scene_id in polled.scene_ids:
                    try:
                        result = pipeline.ingest_scene(scene_id)
                    except Exception as exc:  # noqa: BLE001 - report, keep measuring
                        failures[str(scene_id)] = str(exc)
                        continue
                    chips += result.chips
                    skipped += result.skipped
                total_s = time.perf_counter() - total_started
            engine.dispose()

    times = pipeline.times
    rows = [("search", search_s, polled.items, "items")]
    rows += [(stage, times.seconds[stage], times.chips[stage], "chips") for stage in STAGES[1:]]
    measured = sum(seconds for _, seconds, _, _ in rows)
    print(f"{'stage':<8} {'seconds':>8} {'count':>6} {'unit':<6} {'per s':>8} {'share':>6}")
    for stage, seconds, count, unit in rows:
        rate = count / seconds if seconds else float("inf")
        print(
            f"{stage:<8} {seconds:8.2f} {count:6d} {unit:<6} {rate:8.1f} "
            f"{100 * seconds / measured:5.1f}%"
        )
    print(
        f"end to end: {chips} chips stored, {skipped} skipped, {len(polled.scene_ids)} scenes, "
        f"{total_s:.1f} s ingest = {chips / total_s:.2f} chips/s; failures: {len(failures)}"
    )
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "settings": vars(args) | {"json": str(args.json)},
        "model": model.version,
        "stages": {
            stage: {"seconds": seconds, "count": count, "unit": unit}
            for stage, seconds, count, unit in rows
        },
        "chips": chips,
        "skipped": skipped,
        "scenes": len(polled.scene_ids),
        "ingest_seconds": total_s,
        "failures": failures,
    }
    args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
