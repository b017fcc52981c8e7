"""Soak test: mixed search traffic at fixed concurrency for minutes; throughput, latency, memory.

Seeds a throw-away embedded PostgreSQL (or `--database-url`) with N synthetic chips registered
under the served model, starts the real `geomelt serve` as a subprocess on loopback, and runs
`--concurrency` keep-alive clients for `--minutes`, each request drawn from a fixed mix:

- `q_bbox` (40 %): `GET /search?q=<phrase>&bbox=<region>` (the text tower, then ranked search);
  phrases come from ~2,000 combinations, more than the engine's 1,024-entry text cache, so the
  cache keeps evicting as it would under real use;
- `search` (30 %): `GET /search?bbox=<region>` or an unfiltered page (sorted by datetime);
- `item` (30 %): `GET /collections/{collection}/items/{id}` of a random chip.

Prints a table per interval (requests/s, p50/p95/p99 latency, errors, server RSS) and overall per
kind, and writes all of it as JSON. Memory must level off: the report gives the server's RSS
growth over the second half of the run, which a leak would keep positive.

    python -m benchmarks.soak [--minutes 10] [--concurrency 8] [--chips 10000]
        [--model geomelt-small] [--json soak.json]

The load generator runs on the same machine (and shares its CPUs with the server): the numbers
are what one machine serves to itself, a lower bound for the server alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from sqlalchemy import select

from geomelt.db import EmbeddedPostgres, create_db_engine, unit_of_work, upgrade
from geomelt.db.embedded import free_port
from geomelt.db.models import Model
from geomelt.db.queries import ChipRecord, SceneRecord, upsert_chips, upsert_scene
from geomelt.db.queries.filters import chip_item_id
from geomelt.db.sources import create_source

KINDS = {"q_bbox": 0.4, "search": 0.3, "item": 0.3}
GRID = 10  # chips per scene side
CHIP_DEG = 0.01
COLLECTION = "soak"
ADJECTIVES = ("small", "large", "dense", "green", "dry", "flooded", "new", "old", "red", "white")
NOUNS = (
    "boats",
    "harbour",
    "river",
    "farmland",
    "forest",
    "roads",
    "houses",
    "airport",
    "storage tanks",
    "stadium",
    "beach",
    "lake",
    "bridge",
    "parking lot",
    "railway",
    "vineyard",
    "quarry",
    "solar panels",
    "greenhouses",
    "golf course",
)
CONTEXTS = ("", " near water", " in a city", " by the coast", " in the desert", " in winter")
PHRASES = [f"{a} {n}{c}" for a in ADJECTIVES for n in NOUNS for c in CONTEXTS]


@dataclass(frozen=True)
class Seeded:
    item_ids: list[str]
    regions: list[tuple[float, float, float, float]]  # bbox of each scene


def seed(url: str, model_name: str, chips: int, rng: np.random.Generator) -> Seeded:
    """N chips in scenes of GRID x GRID over the world, registered under the served model."""
    from geomelt.model import load
    from geomelt.workers.pipeline import register_geomelt

    model = load(model_name)
    engine = create_db_engine(url)
    item_ids: list[str] = []
    regions: list[tuple[float, float, float, float]] = []
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    try:
        with unit_of_work(engine) as connection:
            model_id = register_geomelt(connection, model)
            dim = connection.execute(
                select(Model.embedding_dim).where(Model.id == model_id)
            ).scalar_one()
            source = create_source(
                connection,
                {"name": "soak", "stac_api_url": "http://127.0.0.1:1/", "collection": COLLECTION},
                allow_private_hosts=True,  # never polled: chips are written directly
            )
        for scene in range(max(1, chips // (GRID * GRID))):
            west = float(rng.uniform(-170, 170 - GRID * CHIP_DEG))
            south = float(rng.uniform(-60, 60))
            bbox = (west, south, west + GRID * CHIP_DEG, south + GRID * CHIP_DEG)
            when = start + dt.timedelta(hours=int(rng.integers(0, 2 * 365 * 24)))
            item_id = f"scene{scene:06d}"
            with unit_of_work(engine) as connection:
                scene_id, _ = upsert_scene(
                    connection,
                    SceneRecord(
                        source_id=source["id"],
                        collection=COLLECTION,
                        item_id=item_id,
                        item={"type": "Feature", "id": item_id, "properties": {}, "assets": {}},
                        datetime=when,
                        item_version="1",
                        bbox_lonlat=bbox,
                    ),
                )
                vectors = rng.standard_normal((GRID * GRID, dim)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                records = []
                for index, vector in enumerate(vectors):
                    row, col = divmod(index, GRID)
                    w, s = west + col * CHIP_DEG, south + row * CHIP_DEG
                    ring = [
                        (w, s),
                        (w + CHIP_DEG, s),
                        (w + CHIP_DEG, s + CHIP_DEG),
                        (w, s + CHIP_DEG),
                    ]
                    records.append(
                        ChipRecord(
                            scene_id=scene_id,
                            model_id=model_id,
                            row=row,
                            col=col,
                            datetime=when,
                            footprint_lonlat=ring,
                            caption=PHRASES[int(rng.integers(len(PHRASES)))],
                            embedding=vector,
                            window_px=(col * 224, row * 224, 224, 224),
                            valid_fraction=1.0,
                        )
                    )
                    item_ids.append(chip_item_id(item_id, row, col))
                upsert_chips(connection, records)
            regions.append(bbox)
    finally:
        engine.dispose()
    return Seeded(item_ids, regions)


@contextmanager
def running_server(url: str, model_name: str, data_dir: Path) -> Iterator[tuple[int, int]]:
    """`geomelt serve` as a subprocess; yields (port, pid) once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "GEOMELT_DATABASE_URL": url,
        "GEOMELT_API_MODEL": model_name,
        "GEOMELT_DATA_DIR": str(data_dir),
    }
    geomelt = str(Path(sys.executable).parent / "geomelt")
    log = (data_dir / "serve.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - our own entry point
        [geomelt, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"geomelt serve exited; see {data_dir / 'serve.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError("geomelt serve did not answer within 300 s")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


@dataclass
class Samples:
    # (finished at, seconds, kind, status) per request; (at, RSS bytes) per memory sample.
    requests: list[tuple[float, float, str, int]] = field(default_factory=list)
    memory: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _target(kind: str, seeded: Seeded, rng: random.Random) -> str:
    if kind == "item":
        return f"/collections/{COLLECTION}/items/{rng.choice(seeded.item_ids)}"
    west, south, east, north = rng.choice(seeded.regions)
    # A region around one scene and its neighbours: a realistic map viewport.
    bbox = f"{west - 0.5:.4f},{south - 0.5:.4f},{east + 0.5:.4f},{north + 0.5:.4f}"
    if kind == "q_bbox":
        query = {"q": rng.choice(PHRASES), "bbox": bbox, "limit": "10"}
    elif rng.random() < 0.5:
        query = {"bbox": bbox, "limit": "10"}
    else:
        query = {"limit": "10"}
    return "/search?" + urllib.parse.urlencode(query)


def _client(port: int, seeded: Seeded, until: float, samples: Samples, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible traffic mix, not a secret
    kinds, weights = list(KINDS), list(KINDS.values())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        target = _target(kind, seeded, rng)
        began = time.monotonic()
        try:
            connection.request("GET", target)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0  # a dropped connection counts as an error; reconnect
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        finished = time.monotonic()
        with samples.lock:
            samples.requests.append((finished, finished - began, kind, status))
    connection.close()


def _sample_memory(pid: int, until: float, every_s: float, samples: Samples) -> None:
    process = psutil.Process(pid)
    while time.monotonic() < until:
        rss = process.memory_info().rss + sum(
            child.memory_info().rss for child in process.children(recursive=True)
        )
        samples.memory.append((time.monotonic(), rss))
        time.sleep(every_s)


def _stats(rows: list[tuple[float, float, str, int]], seconds: float) -> dict[str, Any]:
    latencies = np.array([r[1] for r in rows]) * 1000 if rows else np.zeros(1)
    return {
        "requests": len(rows),
        "errors": sum(1 for r in rows if r[3] != 200),
        "throughput_rps": round(len(rows) / seconds, 2) if seconds > 0 else 0.0,
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
    }


def report(samples: Samples, began: float, seconds: float, intervals: int) -> dict[str, Any]:
    width = seconds / intervals
    windows = []
    for index in range(intervals):
        low, high = began + index * width, began + (index + 1) * width
        rows = [r for r in samples.requests if low <= r[0] < high]
        rss = [m for t, m in samples.memory if low <= t < high]
        windows.append(
            {
                "from_s": round(index * width),
                "to_s": round((index + 1) * width),
                **_stats(rows, width),
                "rss_mb": round(max(rss) / 2**20, 1) if rss else None,
            }
        )
    overall = {"all": _stats(samples.requests, seconds)}
    for kind in KINDS:
        overall[kind] = _stats([r for r in samples.requests if r[2] == kind], seconds)
    rss_all = [m for _, m in samples.memory]
    half = began + seconds / 2
    second_half = [m for t, m in samples.memory if t >= half]
    memory = {
        "rss_start_mb": round(rss_all[0] / 2**20, 1),
        "rss_end_mb": round(rss_all[-1] / 2**20, 1),
        "rss_max_mb": round(max(rss_all) / 2**20, 1),
        # A server that levels off grows by (about) nothing once warm; a leak keeps growing.
        "rss_growth_second_half_mb": round((second_half[-1] - second_half[0]) / 2**20, 1)
        if len(second_half) > 1
        else None,
        "samples": [(round(t - began, 1), round(m / 2**20, 1)) for t, m in samples.memory],
    }
    return {"windows": windows, "overall": overall, "memory": memory}


def _print(result: dict[str, Any]) -> None:
    header = f"{'window':>11} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6}"
    print(header + f" {'RSS MB':>7}")
    for w in result["windows"]:
        print(
            f"{w['from_s']:>5}-{w['to_s']:<5} {w['throughput_rps']:>7.1f} {w['p50_ms']:>7.1f} "
            f"{w['p95_ms']:>7.1f} {w['p99_ms']:>7.1f} {w['errors']:>6} {w['rss_mb'] or 0:>7.1f}"
        )
    print(f"{'kind':>11} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for kind, s in result["overall"].items():
        print(
            f"{kind:>11} {s['throughput_rps']:>7.1f} {s['p50_ms']:>7.1f} {s['p95_ms']:>7.1f} "
            f"{s['p99_ms']:>7.1f} {s['errors']:>6}"
        )
    m = result["memory"]
    print(
        f"server RSS: start {m['rss_start_mb']} MB, end {m['rss_end_mb']} MB, max "
        f"{m['rss_max_mb']} MB, growth over the second half {m['rss_growth_second_half_mb']} MB"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the measured run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--chips", type=int, default=10_000)
    parser.add_argument("--model", default="geomelt-small", help="the model `geomelt serve` runs")
    parser.add_argument("--warmup-s", type=float, default=15.0, help="unmeasured, before the run")
    parser.add_argument("--intervals", type=int, default=10, help="rows of the table")
    parser.add_argument("--memory-every-s", type=float, default=2.0)
    parser.add_argument("--database-url", default=None, help="default: a fresh embedded server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("soak.json"))
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.concurrency < 1 or args.chips < GRID * GRID:
        parser.error(f"--minutes > 0, --concurrency >= 1, --chips >= {GRID * GRID}")

    with tempfile.TemporaryDirectory(prefix="geomelt-soak-") as scratch, ExitStack() as stack:
        folder = Path(scratch)
        url = args.database_url or stack.enter_context(EmbeddedPostgres(folder / "pg")).url
        upgrade(url)
        print(f"seeding {args.chips} chips ...", flush=True)
        seeded = seed(url, args.model, args.chips, np.random.default_rng(args.seed))
        with running_server(url, args.model, folder) as (port, pid):
            print(f"geomelt serve on port {port} (pid {pid}); warming up", flush=True)
            _run(port, pid, seeded, args.warmup_s, args.concurrency, 1.0, args.seed)
            seconds = args.minutes * 60
            print(f"measuring {seconds:.0f} s at concurrency {args.concurrency}", flush=True)
            samples, began = _run(
                port,
                pid,
                seeded,
                seconds,
                args.concurrency,
                args.memory_every_s,
                args.seed + 1,
            )
    result = report(samples, began, seconds, args.intervals)
    _print(result)
    document = {
        "benchmark": "soak",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "mix": KINDS,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        **result,
    }
    args.json.write_text(json.dumps(document, indent=1))
    print(f"wrote {args.json}")


def _run(
    port: int,
    pid: int,
    seeded: Seeded,
    seconds: float,
    concurrency: int,
    memory_every_s: float,
    seed: int,
) -> tuple[Samples, float]:
    samples = Samples()
    began = time.monotonic()
    until = began + seconds
    threads = [
        threading.Thread(target=_client, args=(port, seeded, until, samples, seed * 1000 + i))
        for i in range(concurrency)
    ]
    threads.append(
        threading.Thread(target=_sample_memory, args=(pid, until, memory_every_s, samples))
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples, began


if __name__ == "__main__":
    main()
