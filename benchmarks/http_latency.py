"""End-to-end HTTP latency of `geomelt serve` per kind of request, single client and concurrent.

Seeds a throw-away embedded PostgreSQL with N synthetic chips (benchmarks.soak's seeding: scenes
of 10 x 10 chips over the world, registered under the served model), starts the real
`geomelt serve` on loopback and measures each kind of request on its own:

- `q_bbox`: `GET /search?q=<new phrase>&bbox=<viewport>`: a phrase never sent before (a number
  is appended), so the text tower runs on every request;
- `q_bbox_cached`: the same with one repeated phrase (the engine's text-vector cache hit);
- `q`: a new phrase alone (unfiltered ranked search);
- `similar_to`: `GET /search?similar_to=<chip>` (more like this);
- `bbox`, `bbox_datetime`: plain STAC searches (a viewport; the same with a year's range);
- `items`: `GET /collections/{id}/items`, `item`: one item by id.

Per kind: `--requests` serial requests from one keep-alive client, then `--concurrency` clients
sending `--requests` each; p50/p95/p99 and requests/s. Where the time goes (medians, single
client): `encode` = q_bbox - q_bbox_cached (the text tower as served), `rank` = q_bbox_cached -
bbox (planning and the vector search), `json` = encoding a returned page with msgspec in this
process, `rest` = bbox - json (filter SQL, routing, HTTP). The text tower is also timed directly
in this process (`encode_direct`).

    python -m benchmarks.http_latency [--chips 20000] [--requests 40] [--concurrency 8]
        [--model geomelt-small] [--json http_latency.json]

The reference STAC API (stac-fastapi-pgstac) is measured side by side only where installed;
the load generator shares the machine's CPUs with the server.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import platform
import random
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from geomelt.db import EmbeddedPostgres, upgrade

from .soak import COLLECTION, PHRASES, Seeded, running_server, seed

KINDS = (
    "q_bbox",
    "q_bbox_cached",
    "q",
    "similar_to",
    "bbox",
    "bbox_datetime",
    "items",
    "item",
)


def _viewport(seeded: Seeded, rng: random.Random) -> str:
    west, south, east, north = rng.choice(seeded.regions)
    return f"{west - 0.5:.4f},{south - 0.5:.4f},{east + 0.5:.4f},{north + 0.5:.4f}"


def target(kind: str, seeded: Seeded, rng: random.Random, counter: Callable[[], int]) -> str:
    """The path of one request of `kind` (phrases made new with a process-wide counter)."""
    new_phrase = f"{rng.choice(PHRASES)} {counter()}"
    queries: dict[str, dict[str, str]] = {
        "q_bbox": {"q": new_phrase, "bbox": _viewport(seeded, rng)},
        "q_bbox_cached": {"q": PHRASES[0], "bbox": _viewport(seeded, rng)},
        "q": {"q": new_phrase},
        "similar_to": {"similar_to": rng.choice(seeded.item_ids)},
        "bbox": {"bbox": _viewport(seeded, rng)},
        "bbox_datetime": {
            "bbox": _viewport(seeded, rng),
            "datetime": "2024-01-01T00:00:00Z/2024-12-31T23:59:59Z",
        },
    }
    if kind == "items":
        return f"/collections/{COLLECTION}/items?limit=10"
    if kind == "item":
        return f"/collections/{COLLECTION}/items/{rng.choice(seeded.item_ids)}"
    return "/search?" + urllib.parse.urlencode({**queries[kind], "limit": "10"})


def _client(
    port: int, paths: list[str], out: list[float], bodies: list[bytes], errors: list[int]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for path in paths:
        began = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        out.append(time.perf_counter() - began)
        if response.status != 200:
            errors.append(response.status)
        elif not bodies:
            bodies.append(body)
    connection.close()


def _stats(seconds: list[float], wall_s: float) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "requests": len(seconds),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "per_s": round(len(seconds) / wall_s, 1),
    }


def measure(
    port: int, seeded: Seeded, kind: str, clients: int, requests: int, seed_value: int
) -> tuple[dict[str, float], bytes]:
    rng = random.Random(seed_value)  # noqa: S311 - a reproducible mix, not a secret
    lock, count = threading.Lock(), [seed_value * 1_000_000]

    def counter() -> int:
        with lock:
            count[0] += 1
            return count[0]

    plans = [[target(kind, seeded, rng, counter) for _ in range(requests)] for _ in range(clients)]
    results: list[list[float]] = [[] for _ in range(clients)]
    bodies: list[bytes] = []
    errors: list[int] = []
    threads = [
        threading.Thread(target=_client, args=(port, plans[i], results[i], bodies, errors))
        for i in range(clients)
    ]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{kind}: {len(errors)} non-200 answers, e.g. {errors[0]}")
    return _stats([s for r in results for s in r], wall), (bodies[0] if bodies else b"")


def _json_ms(body: bytes) -> float:
    document = json.loads(body)
    began = time.perf_counter()
    for _ in range(20):
        msgspec.json.encode(document)
    return (time.perf_counter() - began) / 20 * 1000


def _encode_direct_ms(model_name: str) -> float:
    from geomelt.model import load

    model = load(model_name)
    model.encode_queries(["warm up"])
    times = []
    for index in range(10):
        began = time.perf_counter()
        model.encode_queries([f"{PHRASES[index]} {index}"])
        times.append(time.perf_counter() - began)
    return float(np.median(times) * 1000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=40, help="per kind and client")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model", default="geomelt-small", help="the model `geomelt serve` runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("http_latency.json"))
    args = parser.parse_args(argv)
    reference = importlib.util.find_spec("stac_fastapi") is not None
    if not reference:
        print("stac-fastapi-pgstac is not installed here: our numbers only", flush=True)

    table: dict[str, dict[str, Any]] = {}
    json_ms: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="geomelt-http-") as scratch, ExitStack() as stack:
        folder = Path(scratch)
        url = stack.enter_context(EmbeddedPostgres(folder / "pg")).url
        upgrade(url)
        print(f"seeding {args.chips} chips ...", flush=True)
        seeded = seed(url, args.model, args.chips, np.random.default_rng(args.seed))
        with running_server(url, args.model, folder) as (port, _pid):
            for kind in KINDS:  # warm-up: connections, caches, the model's first calls
                measure(port, seeded, kind, 1, 3, args.seed + 99)
            print(
                f"{'kind':<15} {'clients':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
                f"{'req/s':>7}",
                flush=True,
            )
            for kind in KINDS:
                table[kind] = {}
                for clients in (1, args.concurrency):
                    stats, body = measure(port, seeded, kind, clients, args.requests, args.seed)
                    table[kind][str(clients)] = stats
                    print(
                        f"{kind:<15} {clients:>7} {stats['p50_ms']:>8.1f} {stats['p95_ms']:>8.1f}"
                        f" {stats['p99_ms']:>8.1f} {stats['per_s']:>7.1f}",
                        flush=True,
                    )
                json_ms[kind] = round(_json_ms(body), 2)
    single = {kind: table[kind]["1"]["p50_ms"] for kind in KINDS}
    breakdown = {
        "encode_ms": round(single["q_bbox"] - single["q_bbox_cached"], 1),
        "encode_direct_ms": round(_encode_direct_ms(args.model), 1),
        "rank_ms": round(single["q_bbox_cached"] - single["bbox"], 1),
        "json_ms": json_ms["bbox"],
        "rest_ms": round(single["bbox"] - json_ms["bbox"], 1),
    }
    print(f"where the time of a single-client q+bbox goes (p50): {breakdown}", flush=True)
    document = {
        "benchmark": "http_latency",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "reference_api": "stac-fastapi-pgstac installed" if reference else "not installed",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "results": table,
        "json_encode_ms": json_ms,
        "breakdown_single_client_p50": breakdown,
    }
    args.json.write_text(json.dumps(document, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
