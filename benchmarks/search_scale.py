"""Filtered semantic search at scale: recall@10 and latency per strategy and selectivity.

Builds N synthetic chips in the real schema (migrations at head, the model's partial HNSW index
made by `register_model`), then runs spatial (bbox) and temporal (datetime) filters of
selectivity 100 %, 10 %, 1 %, 0.1 % and one scene, with a text-like query vector (`with_q`)
and with a chip's own embedding (`similar_to`), through four strategies:

- `exact`: filter, compute distances, sort (the ground truth of recall@10);
- `hnsw`: the partial HNSW index, pgvector defaults (ef_search 40, no iterative scan);
- `hnsw_iterative`: HNSW with `iterative_scan = relaxed_order`, pgvector defaults otherwise;
- `hnsw_iterative_ef100`, `hnsw_iterative_ef400`: the same at a larger fixed ef_search;
- `planner`: `queries.search.planned_neighbours`, what the engine runs.

    python -m benchmarks.search_scale --chips 100000 --json out.json [--database-url URL]

Data (stated, synthetic): scenes of 10 x 10 chips (0.02° each) on a 5 x 5 tile grid in each of
40 regions around the world, acquired on uniform dates over 2024-2025 and loaded in date order
(as a poller would). Embeddings of the `small` preset's width (D = 384) from a low-rank
Gaussian mixture: a shared mean direction (real image embeddings are anisotropic) plus one of
64 class centres in a random 48-d subspace plus within-class variation in that subspace plus
isotropic noise, normalised; each region draws classes from its own Dirichlet(0.3) mix, so
embeddings correlate with place as land cover does. Text queries: a class centre plus a fixed
"modality gap" offset plus noise, normalised. Captions: "<modifier> <land cover>" per class.
Chips are written by the db layer's bulk path (`queries.ingest.copy_chips`: the rows upsert_chips
writes, sent with COPY; the same table, triggers and indexes); the secondary indexes are dropped
before loading and recreated after, as a bulk load would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, text

from geomelt.db import EmbeddedPostgres, unit_of_work, upgrade
from geomelt.db.maintenance import order_chips_spatially
from geomelt.db.models import Model, Scene, Source
from geomelt.db.queries import register_model
from geomelt.db.queries.ingest import ChipRecord, copy_chips
from geomelt.db.queries.models import HNSW_EF_CONSTRUCTION, HNSW_M, hnsw_index_name
from geomelt.db.queries.search import (
    EXACT_THRESHOLD,
    VectorPlan,
    count_matches,
    planned_neighbours,
    vector_neighbours,
)
from geomelt.db.queries.where import Filters, where_clauses
from geomelt.model import get_config

K = 10
GRID = 10  # chips per scene side
CHIP_DEG = 0.02
TILES = 5  # tiles per region side
REGIONS = 40
CLASSES = 64
RANK = 48
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
DAYS = 730
SELECTIVITIES: tuple[float | str, ...] = (1.0, 0.1, 0.01, 0.001, "scene")
# hnsw_iterative_efN: the iterative scan at a fixed larger ef_search, to show what the planner's
# ef_search floor (search.ef_search_floor) buys at this archive size.
SWEEP_EF_SEARCH = (100, 400)
STRATEGIES = (
    "exact",
    "hnsw",
    "hnsw_iterative",
    *(f"hnsw_iterative_ef{ef}" for ef in SWEEP_EF_SEARCH),
    "planner",
)
_LAND = [
    "forest",
    "cropland",
    "grassland",
    "shrubland",
    "wetland",
    "river",
    "lake",
    "coast",
    "beach",
    "desert",
    "dunes",
    "glacier",
    "city",
    "suburb",
    "industrial",
    "harbour",
    "airport",
    "highway",
    "railway",
    "farmland",
    "orchard",
    "vineyard",
    "mountains",
    "quarry",
]
_MODIFIERS = ("dense", "sparse", "green", "dry")


@dataclass
class Archive:
    """What the benchmark keeps in memory about the chips it loaded (chip order = load order)."""

    chip_ids: np.ndarray[Any, Any]  # database ids
    scene_of: np.ndarray[Any, Any]  # scene index
    west: np.ndarray[Any, Any]
    south: np.ndarray[Any, Any]
    days: np.ndarray[Any, Any]  # float days since START
    embeddings: np.ndarray[Any, Any]  # float16 (N, D), unit norm
    scene_boxes: np.ndarray[Any, Any]  # (S, 4) west, south, east, north
    generator: Generator  # for text-like queries


class Generator:
    """The synthetic embedding distribution (see the module docstring)."""

    def __init__(self, dim: int, rng: np.random.Generator) -> None:
        basis, _ = np.linalg.qr(rng.normal(size=(dim, RANK)))
        self.basis = basis.astype(np.float32)  # (D, RANK)
        self.mean = _unit(rng.normal(size=dim)) * 6.0
        self.centres = rng.normal(size=(CLASSES, RANK)).astype(np.float32)
        self.gap = _unit(rng.normal(size=dim)) * 4.0
        self.region_mix = rng.dirichlet(np.full(CLASSES, 0.3), size=REGIONS)
        self.dim = dim

    def chips(
        self, classes: np.ndarray[Any, Any], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        low = self.centres[classes] + 0.6 * rng.normal(size=(len(classes), RANK))
        vectors = self.mean + low @ self.basis.T + 0.15 * rng.normal(size=(len(classes), self.dim))
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    def text_query(self, rng: np.random.Generator) -> np.ndarray[Any, Any]:
        centre = self.centres[rng.integers(CLASSES)] @ self.basis.T
        vector = 0.5 * self.mean + centre + self.gap + 0.15 * rng.normal(size=self.dim)
        return _unit(vector).astype(np.float32)


def _unit(vector: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return vector / np.linalg.norm(vector)


def build(
    engine: Engine,
    n_chips: int,
    dim: int,
    seed: int,
    hnsw: tuple[int, int] = (HNSW_M, HNSW_EF_CONSTRUCTION),
) -> tuple[Archive, int, dict[str, Any]]:
    """Load the archive; returns it, the model id and timings."""
    rng = np.random.default_rng(seed)
    gen = Generator(dim, rng)
    n_scenes = -(-n_chips // (GRID * GRID))
    region_x = rng.uniform(-170, 165, REGIONS)
    region_y = rng.uniform(-55, 60, REGIONS)
    scene_region = rng.integers(REGIONS, size=n_scenes)
    tile_x = rng.integers(TILES, size=n_scenes)
    tile_y = rng.integers(TILES, size=n_scenes)
    scene_days = np.sort(rng.uniform(0, DAYS, n_scenes))  # loaded in date order
    tile_deg = GRID * CHIP_DEG
    scene_west = (region_x[scene_region] + tile_x * tile_deg).round(6)
    scene_south = (region_y[scene_region] + tile_y * tile_deg).round(6)
    east, north = (scene_west + tile_deg).tolist(), (scene_south + tile_deg).tolist()
    timings: dict[str, Any] = {}
    started = time.perf_counter()
    with unit_of_work(engine) as connection:
        source_id = connection.execute(
            Source.__table__.insert()
            .values(name="search-scale", stac_api_url="http://127.0.0.1:1/", collection="bench")
            .returning(Source.id)
        ).scalar_one()
        model_id = connection.execute(
            Model.__table__.insert()
            .values(name="bench-small", version=f"n{n_chips}", sha256="b" * 64, embedding_dim=dim)
            .returning(Model.id)
        ).scalar_one()
        scene_rows = [
            {
                "source_id": source_id,
                "collection": "bench",
                "item_id": f"S{i:07d}",
                "item": {"id": f"S{i:07d}", "properties": {}},
                "datetime": START + dt.timedelta(days=float(scene_days[i])),
                "item_version": "1",
                "bbox": f"({east[i]},{north[i]}),({float(scene_west[i])},{float(scene_south[i])})",
                "state": "done",
            }
            for i in range(n_scenes)
        ]
        scene_ids = np.asarray(
            connection.execute(Scene.__table__.insert().returning(Scene.id), scene_rows)
            .scalars()
            .all()
        )
        # A bulk load: secondary indexes are rebuilt once at the end, not row by row.
        definitions = list(
            connection.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chips' "
                    "AND indexname LIKE 'ix_chips_%'"
                )
            )
        )
        for name, _ in definitions:
            connection.execute(text(f'DROP INDEX "{name}"'))
    timings["scenes_seconds"] = time.perf_counter() - started

    n_total = n_scenes * GRID * GRID
    captions = [
        f"{_MODIFIERS[k // len(_LAND) % 4]} {_LAND[k % len(_LAND)]}" for k in range(CLASSES)
    ]
    chip_times = [START + dt.timedelta(days=float(day)) for day in scene_days]
    per_scene = np.arange(GRID * GRID)
    all_ids, all_emb = [], []
    batch_scenes = 1000
    started = time.perf_counter()
    for first in range(0, n_scenes, batch_scenes):
        scenes = np.arange(first, min(first + batch_scenes, n_scenes))
        s_idx = np.repeat(scenes, GRID * GRID)
        rows = np.tile(per_scene // GRID, len(scenes))
        cols = np.tile(per_scene % GRID, len(scenes))
        classes = np.array(
            [rng.choice(CLASSES, p=gen.region_mix[scene_region[s]]) for s in s_idx], dtype=np.int32
        )
        embeddings = gen.chips(classes, rng)
        west = scene_west[s_idx] + cols * CHIP_DEG
        south = scene_south[s_idx] + rows * CHIP_DEG
        chips = [
            ChipRecord(
                scene_id=int(scene_ids[s]),
                model_id=model_id,
                row=int(r),
                col=int(c),
                datetime=chip_times[s],
                footprint_lonlat=[
                    (w, so),
                    (w + CHIP_DEG, so),
                    (w + CHIP_DEG, so + CHIP_DEG),
                    (w, so + CHIP_DEG),
                ],
                caption=captions[k],
                embedding=e,
                window_px=(int(c) * 224, int(r) * 224, 224, 224),
                valid_fraction=1.0,
            )
            for s, r, c, w, so, k, e in zip(
                s_idx.tolist(),
                rows,
                cols,
                west.tolist(),
                south.tolist(),
                classes.tolist(),
                embeddings,
                strict=True,
            )
        ]
        with unit_of_work(engine) as connection:
            ids = copy_chips(connection, chips)
        all_ids.append(np.asarray(ids))
        all_emb.append(embeddings.astype(np.float16))
        print(f"  loaded {min(len(np.concatenate(all_ids)), n_total)} chips", flush=True)
    timings["load_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    with engine.begin() as connection:
        for _, definition in definitions:
            connection.execute(text(definition))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE chips"))
        connection.execute(text("VACUUM ANALYZE scenes"))
    timings["secondary_indexes_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    with unit_of_work(engine) as connection:
        register_model(
            connection,
            name="bench-small",
            version=f"n{n_chips}",
            sha256="b" * 64,
            embedding_dim=dim,
            hnsw_m=hnsw[0],
            hnsw_ef_construction=hnsw[1],
        )
    timings["build_seconds"] = time.perf_counter() - started

    s_all = np.repeat(np.arange(n_scenes), GRID * GRID)
    cols_all = np.tile(per_scene % GRID, n_scenes)
    rows_all = np.tile(per_scene // GRID, n_scenes)
    archive = Archive(
        chip_ids=np.concatenate(all_ids),
        scene_of=s_all,
        west=scene_west[s_all] + cols_all * CHIP_DEG,
        south=scene_south[s_all] + rows_all * CHIP_DEG,
        days=scene_days[s_all],
        embeddings=np.concatenate(all_emb),
        scene_boxes=np.stack(
            [scene_west, scene_south, scene_west + tile_deg, scene_south + tile_deg], axis=1
        ),
        generator=gen,
    )
    return archive, int(model_id), timings


def make_filters(
    archive: Archive, model_id: int, selectivity: float | str, family: str, rng: np.random.Generator
) -> Filters:
    n = len(archive.chip_ids)
    if selectivity == 1.0:
        return Filters(model_id=model_id)
    if selectivity == "scene":
        west, south, east, north = archive.scene_boxes[
            rng.integers(len(archive.scene_boxes))
        ].tolist()
        shrink = CHIP_DEG / 100  # neighbouring tiles share edges; `&&` counts touching
        return Filters(
            model_id=model_id,
            bbox=(west + shrink, south + shrink, east - shrink, north - shrink),
        )
    target = max(1, round(float(selectivity) * n))
    if family == "temporal":
        days = np.sort(archive.days)
        first = int(rng.integers(0, n - target + 1))
        start = START + dt.timedelta(days=float(days[first]))
        end = START + dt.timedelta(days=float(days[first + target - 1]))
        return Filters(model_id=model_id, datetime_start=start, datetime_end=end)
    # spatial: a square box around a random chip, grown until it holds the target count
    x = archive.west + CHIP_DEG / 2
    y = archive.south + CHIP_DEG / 2
    centre = int(rng.integers(n))
    cx, cy = float(x[centre]), float(y[centre])
    low, high = 0.0, 360.0
    for _ in range(40):
        half = (low + high) / 2
        inside = int(np.count_nonzero((np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)))
        low, high = (low, half) if inside >= target else (half, high)
    half = high
    bbox = (
        max(cx - half, -180.0),
        max(cy - half, -90.0),
        min(cx + half, 180.0),
        min(cy + half, 90.0),
    )
    return Filters(model_id=model_id, bbox=bbox)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _fixed_plans() -> dict[str, VectorPlan]:
    """Every strategy but the planner: one fixed plan each."""
    iterative = {
        f"hnsw_iterative_ef{ef}": VectorPlan("hnsw", 0, ef_search=ef, max_scan_tuples=20_000)
        for ef in SWEEP_EF_SEARCH
    }
    return {
        "exact": VectorPlan("exact", 0),
        "hnsw": VectorPlan("hnsw", 0, ef_search=40, iterative_scan="off"),
        "hnsw_iterative": VectorPlan("hnsw", 0, ef_search=40, max_scan_tuples=20_000),
        **iterative,
    }


def run_queries(
    engine: Engine,
    archive: Archive,
    model_id: int,
    dim: int,
    queries: int,
    exact_threshold: int,
    seed: int,
    selectivities: Sequence[float | str] = SELECTIVITIES,
    strategies: Sequence[str] = STRATEGIES,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of the results table, and per-query samples of exact cost vs candidates."""
    rng = np.random.default_rng(seed + 1)
    gen = archive.generator

    def fixed(
        plan: VectorPlan,
    ) -> Callable[[Any, Filters, np.ndarray[Any, Any]], tuple[list[int], str]]:
        def run(
            connection: Any, filters: Filters, vector: np.ndarray[Any, Any]
        ) -> tuple[list[int], str]:
            found = vector_neighbours(
                connection, where_clauses(filters), vector, dim=dim, depth=K, plan=plan
            )
            return [chip for chip, _ in found], plan.strategy

        return run

    def planner(
        connection: Any, filters: Filters, vector: np.ndarray[Any, Any]
    ) -> tuple[list[int], str]:
        found, plan = planned_neighbours(
            connection, filters, vector, dim=dim, depth=K, exact_threshold=exact_threshold
        )
        return [chip for chip, _ in found], plan.strategy + ("*" if plan.fallback_from else "")

    plans = {name: fixed(plan) for name, plan in _fixed_plans().items()}
    plans["planner"] = planner

    results: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    for selectivity in selectivities:
        families = (
            ["none"]
            if selectivity == 1.0
            else (["spatial"] if selectivity == "scene" else ["spatial", "temporal"])
        )
        for family in families:
            for with_q in (True, False):
                cases = []
                for _ in range(queries):
                    filters = make_filters(archive, model_id, selectivity, family, rng)
                    if with_q:
                        vector = gen.text_query(rng)
                    else:
                        vector = archive.embeddings[rng.integers(len(archive.embeddings))].astype(
                            np.float32
                        )
                        vector = _unit(vector)
                    with unit_of_work(engine) as connection:
                        matched = count_matches(connection, where_clauses(filters))
                    cases.append((filters, vector, matched))
                truths: list[list[int]] = []
                for strategy in strategies:
                    latencies, recalls, chosen = [], [], {}
                    for i, (filters, vector, matched) in enumerate(cases):
                        started = time.perf_counter()
                        with unit_of_work(engine) as connection:
                            found, ran = plans[strategy](connection, filters, vector)
                        elapsed_ms = (time.perf_counter() - started) * 1000
                        latencies.append(elapsed_ms)
                        chosen[ran] = chosen.get(ran, 0) + 1
                        if strategy == "exact":
                            truths.append(found)
                            samples.append({"candidates": matched, "ms": elapsed_ms})
                        truth = truths[i]
                        recalls.append(len(set(found) & set(truth)) / len(truth) if truth else 1.0)
                    row = {
                        "strategy": strategy,
                        "selectivity": selectivity,
                        "filter": family,
                        "with_q": with_q,
                        "recall_at_10": round(float(np.mean(recalls)), 4),
                        "p50_ms": round(_percentile(latencies, 50), 2),
                        "p95_ms": round(_percentile(latencies, 95), 2),
                        "p99_ms": round(_percentile(latencies, 99), 2),
                        "candidates_mean": round(float(np.mean([c[2] for c in cases])), 1),
                        "queries": len(cases),
                        "ran": chosen,
                    }
                    results.append(row)
                    print(_format_row(row), flush=True)
    return results, samples


def _format_row(row: dict[str, Any]) -> str:
    return (
        f"{row['strategy']:<20} {row['selectivity']!s:>6} {row['filter']:<8} "
        f"{'q' if row['with_q'] else 'sim':<4} {row['candidates_mean']:>10.0f} "
        f"{row['recall_at_10']:>7.3f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
        f"{row['p99_ms']:>8.1f}  {row['ran']}"
    )


def measure_threshold(
    results: list[dict[str, Any]], samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """Where exact stops being the cheaper exact-recall plan: its cost per candidate (least
    squares over the exact runs) against the p95 of HNSW with iterative scan on the broad,
    unfiltered case (the cost HNSW pays where it is at its best)."""
    candidates = np.array([s["candidates"] for s in samples], dtype=float)
    ms = np.array([s["ms"] for s in samples], dtype=float)
    slope, intercept = np.polyfit(candidates, ms, 1)
    broad = [
        r["p95_ms"]
        for r in results
        if r["strategy"] == "hnsw_iterative" and r["selectivity"] == 1.0
    ]
    hnsw_p95 = float(max(broad)) if broad else float("nan")
    crossover = (hnsw_p95 - intercept) / slope if slope > 0 else float("inf")
    return {
        "exact_ms_per_1000_candidates": round(float(slope) * 1000, 3),
        "exact_fixed_ms": round(float(intercept), 2),
        "hnsw_iterative_broad_p95_ms": round(hnsw_p95, 2),
        # None when hnsw_iterative was not run (--strategies).
        "crossover_candidates": None if np.isnan(crossover) else int(max(crossover, 0)),
    }


def sizes(engine: Engine, model_id: int) -> dict[str, Any]:
    with unit_of_work(engine) as connection:
        rows = connection.execute(
            text(
                "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c "
                "WHERE c.relname = 'chips' OR c.oid IN "
                "(SELECT indexrelid FROM pg_index WHERE indrelid = 'chips'::regclass)"
            )
        ).all()
        total = connection.execute(text("SELECT pg_total_relation_size('chips')")).scalar_one()
        count = connection.execute(text("SELECT count(*) FROM chips")).scalar_one()
        embedding = connection.execute(
            text("SELECT avg(pg_column_size(embedding)) FROM chips")
        ).scalar_one()
    by_name = {name: int(size) for name, size in rows}
    return {
        "chips": int(count),
        "table_bytes": by_name.pop("chips"),
        "total_bytes": int(total),
        "hnsw_bytes": by_name.get(hnsw_index_name(model_id), 0),
        "index_bytes": by_name,
        "bytes_per_chip_total": round(int(total) / max(int(count), 1), 1),
        "embedding_bytes_per_chip": round(float(embedding), 1),
    }


def vector_vs_halfvec(
    engine: Engine, archive: Archive, dim: int, sample: int, seed: int
) -> dict[str, Any]:
    """The same `sample` embeddings as vector(D) and halfvec(D): sizes, HNSW build, recall@10.

    Ground truth: float32 exact neighbours in numpy; `exact_recall` says what halfvec's 16-bit
    storage alone costs, `hnsw_recall` what each index returns (ef_search 40).
    """
    rng = np.random.default_rng(seed + 2)
    take = rng.choice(
        len(archive.embeddings), size=min(sample, len(archive.embeddings)), replace=False
    )
    vectors = archive.embeddings[take].astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = archive.embeddings[rng.choice(len(archive.embeddings), 50)].astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :K]
    out: dict[str, Any] = {"sample": len(take)}
    for kind, ops in (("vector", "vector_cosine_ops"), ("halfvec", "halfvec_cosine_ops")):
        table = f"bench_{kind}"
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
            connection.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, e {kind}({dim}))"))
            raw = connection.connection.dbapi_connection
            if raw is None:
                raise RuntimeError("no DBAPI connection for COPY")
            with raw.cursor() as cursor, cursor.copy(f"COPY {table} (id, e) FROM STDIN") as copy:
                for i, v in enumerate(vectors):
                    copy.write_row((i, "[" + ",".join(f"{x:.7g}" for x in v) + "]"))
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(text(f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (e {ops})"))
        build_s = time.perf_counter() - started
        exact_hits = hnsw_hits = 0
        with engine.begin() as connection:
            heap, index = connection.execute(
                text(f"SELECT pg_relation_size('{table}'), pg_relation_size('{table}_hnsw')")
            ).one()
            for q, expected in zip(queries, truth, strict=True):
                literal = "[" + ",".join(f"{x:.7g}" for x in q) + "]"
                for mode in ("exact", "hnsw"):
                    order = (
                        "(e <=> CAST(:q AS {k})) + 0"
                        if mode == "exact"
                        else "e <=> CAST(:q AS {k})"
                    )
                    ids = (
                        connection.execute(
                            text(
                                f"SELECT id FROM {table} ORDER BY {order.format(k=kind)} LIMIT {K}"  # noqa: S608 - our constants
                            ),
                            {"q": literal},
                        )
                        .scalars()
                        .all()
                    )
                    hits = len(set(ids) & set(expected.tolist()))
                    if mode == "exact":
                        exact_hits += hits
                    else:
                        hnsw_hits += hits
            connection.execute(text(f"DROP TABLE {table}"))
        out[kind] = {
            "table_bytes": int(heap),
            "hnsw_bytes": int(index),
            "hnsw_build_seconds": round(build_s, 2),
            "exact_recall_at_10": exact_hits / (K * len(queries)),
            "hnsw_recall_at_10": hnsw_hits / (K * len(queries)),
        }
    return out


def prewarm(engine: Engine) -> dict[str, int]:
    """Load `chips` and its indexes into shared buffers (pages per relation), as a server in
    steady state has them: latencies then measure search, not first reads from the OS cache."""
    with engine.begin() as connection:
        try:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
        except Exception as error:  # noqa: BLE001 - a server without the contrib module
            print(f"pg_prewarm unavailable ({type(error).__name__}); measuring cold", flush=True)
            return {}
        rows = connection.execute(
            text(
                "SELECT c.relname, pg_prewarm(c.oid) FROM pg_class c "
                "WHERE c.oid = 'chips'::regclass OR c.oid IN "
                "(SELECT indexrelid FROM pg_index WHERE indrelid = 'chips'::regclass)"
            )
        )
        return {str(name): int(pages) for name, pages in rows}


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with (
        tempfile.TemporaryDirectory(prefix="search-scale-") as folder,
        EmbeddedPostgres(Path(folder)) as server,
    ):
        yield server.url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=20_000)
    parser.add_argument("--json", type=Path, default=Path("search_scale.json"))
    parser.add_argument("--database-url", default=None, help="default: a fresh embedded server")
    parser.add_argument("--preset", default="small", help="model preset giving D")
    parser.add_argument("--queries", type=int, default=20, help="per selectivity/filter/q cell")
    parser.add_argument("--exact-threshold", type=int, default=EXACT_THRESHOLD)
    parser.add_argument("--compare-sample", type=int, default=20_000, help="vector vs halfvec")
    parser.add_argument("--maintenance-work-mem", default="2GB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hnsw-m", type=int, default=HNSW_M)
    parser.add_argument("--hnsw-ef-construction", type=int, default=HNSW_EF_CONSTRUCTION)
    parser.add_argument(
        "--selectivities",
        default=",".join(map(str, SELECTIVITIES)),
        help="comma list of the cells to run, e.g. 1.0,0.1",
    )
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="comma list of strategies to run (exact, the truth of recall, always runs)",
    )
    parser.add_argument(
        "--spatial-order",
        choices=("arrival", "clustered", "both"),
        default="arrival",
        help="measure chips as loaded (acquisition order), after CLUSTER on the bbox GiST "
        "index (migration 0006, db.maintenance.order_chips_spatially), or both in turn",
    )
    args = parser.parse_args(argv)
    named = args.strategies.split(",")
    strategies = ["exact", *(s for s in STRATEGIES if s != "exact" and s in named)]
    wanted = [s for s in SELECTIVITIES if str(s) in args.selectivities.split(",")]
    unknown = set(args.selectivities.split(",")) - {str(s) for s in SELECTIVITIES}
    if unknown:
        parser.error(f"--selectivities {', '.join(sorted(unknown))}: use some of {SELECTIVITIES}")
    dim = get_config(args.preset).embed_dim
    with database(args.database_url) as url:
        upgrade(url)
        engine = create_engine(
            url,
            connect_args={
                "options": f"-c maintenance_work_mem={args.maintenance_work_mem} "
                "-c max_parallel_maintenance_workers=1 -c work_mem=64MB"
            },
        )
        print(f"building {args.chips} chips, D={dim}", flush=True)
        hnsw = (args.hnsw_m, args.hnsw_ef_construction)
        archive, model_id, timings = build(engine, args.chips, dim, args.seed, hnsw)
        print(f"built: {timings}", flush=True)
        print(f"prewarmed: {prewarm(engine)}", flush=True)
        print(
            f"{'strategy':<20} {'select':>6} {'filter':<8} {'mode':<4} {'candidates':>10} "
            f"{'recall':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  ran"
        )
        orders: dict[str, list[dict[str, Any]]] = {}
        results: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        for order in ("arrival", "clustered"):
            if args.spatial_order not in (order, "both"):
                continue
            if order == "clustered":
                started = time.perf_counter()
                order_chips_spatially(engine)
                timings["cluster_seconds"] = time.perf_counter() - started
                print(f"clustered in {timings['cluster_seconds']:.0f} s; {prewarm(engine)}")
            print(f"-- chips in {order} order", flush=True)
            results, samples = run_queries(
                engine,
                archive,
                model_id,
                dim,
                args.queries,
                args.exact_threshold,
                args.seed,
                wanted,
                strategies,
            )
            orders[order] = results
        threshold = measure_threshold(results, samples)
        print(f"threshold: {threshold}", flush=True)
        storage = sizes(engine, model_id)
        print(f"sizes: {storage}", flush=True)
        comparison = vector_vs_halfvec(engine, archive, dim, args.compare_sample, args.seed)
        print(f"vector vs halfvec: {comparison}", flush=True)
        engine.dispose()
    document = {
        "chips": args.chips,
        "dim": dim,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "exact_threshold": args.exact_threshold,
        "hnsw": {"m": args.hnsw_m, "ef_construction": args.hnsw_ef_construction},
        "build_seconds": round(timings["build_seconds"], 2),
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "results": results,
        "results_by_order": orders,
        "threshold": threshold,
        "sizes": storage,
        "vector_vs_halfvec": comparison,
    }
    args.json.write_text(json.dumps(document, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
