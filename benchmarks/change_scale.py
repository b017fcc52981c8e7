"""Change search at scale: latency of `/changes` (one page and numberMatched) against the number of
cells in the region, on up to 1M chips.

    python -m benchmarks.change_scale --chips 1000000 --json out.json [--database-url URL]

Data (synthetic, stated): one square block of ground-grid cells (0.01 deg each) seen at two
dates, so `--chips` N gives N/2 cells with a before and an after chip each; random embeddings of
width `--dim` (384, the `small` preset's), valid_fraction 1. Rows are made by INSERT ... SELECT
generate_series in the real schema (migrations at head; the chip_cells triggers and GiST, B-tree
and (model_id, cell_id, datetime) indexes in place). The model row is inserted without its HNSW
index: change search does not use it. Regions are squares around the block's corner holding
about 1k, 10k, 100k cells and the whole block; each query runs 3 times after one warm-up, the
median is reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from geomelt.db import EmbeddedPostgres, create_db_engine, upgrade
from geomelt.db.queries.change import (
    ChangeQuery,
    DateRange,
    change_page,
    count_changed_cells,
)

CELL_DEG = 0.01
BEFORE = dt.datetime(2012, 7, 31, tzinfo=dt.UTC)
AFTER = dt.datetime(2020, 8, 31, tzinfo=dt.UTC)


def build(engine: Engine, chips: int, dim: int) -> tuple[int, int]:
    """Insert the data; returns (model id, cells per side)."""
    side = max(1, math.isqrt(chips // 2))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sources (id, name, stac_api_url, collection) "
                "VALUES (1, 'bench', 'http://127.0.0.1:1/', 'bench')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO models (id, name, version, sha256, embedding_dim) "
                "VALUES (1, 'bench', 'v1', repeat('0', 64), :dim)"
            ),
            {"dim": dim},
        )
        connection.execute(
            text(
                "INSERT INTO scenes (id, source_id, collection, item_id, item, item_version, "
                "datetime, state) VALUES "
                "(1, 1, 'bench', 'before', '{}', 'v1', :before, 'done'),"
                "(2, 1, 'bench', 'after', '{}', 'v1', :after, 'done')"
            ),
            {"before": BEFORE, "after": AFTER},
        )
    statement = text(
        """
        INSERT INTO chips (scene_id, model_id, row, col, datetime, footprint, bbox, geometry,
                           embedding, window_x_px, window_y_px, window_width_px,
                           window_height_px, valid_fraction, cell_id)
        SELECT :scene, 1, r, c, :when,
               polygon(box(point(c * :deg, r * :deg), point((c + 1) * :deg, (r + 1) * :deg))),
               box(point(c * :deg, r * :deg), point((c + 1) * :deg, (r + 1) * :deg)),
               jsonb_build_object('type', 'Polygon', 'coordinates', jsonb_build_array(
                   jsonb_build_array(jsonb_build_array(c * :deg, r * :deg),
                                     jsonb_build_array((c + 1) * :deg, r * :deg),
                                     jsonb_build_array((c + 1) * :deg, (r + 1) * :deg),
                                     jsonb_build_array(c * :deg, (r + 1) * :deg),
                                     jsonb_build_array(c * :deg, r * :deg)))),
               (SELECT array_agg(random() - 0.5)::real[]::halfvec
                FROM generate_series(1, :dim) WHERE r >= 0),
               0, 0, 224, 224, 1.0,
               'utm14n_5m_224px_' || r || '_' || c
        FROM generate_series(:r0, :r1 - 1) AS r, generate_series(0, :side - 1) AS c
        """
    )
    rows_per_batch = max(1, 50_000 // side)
    for scene, when in ((1, BEFORE), (2, AFTER)):
        for r0 in range(0, side, rows_per_batch):
            with engine.begin() as connection:
                connection.execute(
                    statement,
                    {
                        "scene": scene,
                        "when": when,
                        "deg": CELL_DEG,
                        "dim": dim,
                        "r0": r0,
                        "r1": min(side, r0 + rows_per_batch),
                        "side": side,
                    },
                )
    with engine.begin() as connection:
        connection.execute(text("ANALYZE chips"))
    return 1, side


def _timed(run: Any) -> tuple[float, Any]:
    run()  # warm-up
    samples, result = [], None
    for _ in range(3):
        started = time.perf_counter()
        result = run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def measure(engine: Engine, model_id: int, side: int) -> list[dict[str, Any]]:
    results = []
    for cells in sorted({min(n, side * side) for n in (1_000, 10_000, 100_000, side * side)}):
        k = max(1, round(math.sqrt(cells)))
        # A hair inside the k x k block so that bbox && footprint takes exactly those cells.
        bbox = (1e-6, 1e-6, k * CELL_DEG - 1e-6, k * CELL_DEG - 1e-6)
        query = ChangeQuery(
            model_id=model_id,
            before=DateRange(dt.datetime(2012, 1, 1, tzinfo=dt.UTC), BEFORE),
            after=DateRange(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), AFTER),
            bbox=bbox,
        )
        with engine.connect() as connection:
            page_ms, page = _timed(
                lambda q=query, c=connection: change_page(c, q, after_key=None, limit=11)
            )
            count_ms, matched = _timed(lambda q=query, c=connection: count_changed_cells(c, q))
        results.append(
            {
                "cells_in_region": int(matched),
                "chips_in_region": 2 * int(matched),
                "page_ms": round(page_ms, 1),
                "count_ms": round(count_ms, 1),
                "returned": len(page),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--database-url", help="an empty database (default: a scratch one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="geomelt-change-scale-") as scratch:
        if args.database_url:
            url = args.database_url
            server = None
        else:
            server = EmbeddedPostgres(Path(scratch) / "pg")
            server.__enter__()
            url = server.database_url("postgres")
        try:
            upgrade(url)
            engine = create_db_engine(url)
            model_id, side = build(engine, args.chips, args.dim)
            build_s = time.perf_counter() - started
            rows = measure(engine, model_id, side)
            engine.dispose()
        finally:
            if server is not None:
                server.__exit__(None, None, None)
    cells = side * side
    print(f"{2 * cells} chips ({cells} cells x 2 dates), D={args.dim}, built in {build_s:.0f} s")
    print(f"{'cells in region':>16} {'chips':>9} {'page ms':>9} {'count ms':>9}")
    for row in rows:
        print(
            f"{row['cells_in_region']:>16} {row['chips_in_region']:>9} "
            f"{row['page_ms']:>9} {row['count_ms']:>9}"
        )
    if args.json:
        document = {"chips": args.chips, "dim": args.dim, "build_s": round(build_s), "rows": rows}
        args.json.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
