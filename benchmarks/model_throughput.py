"""GeoMELT throughput: chips/s for embedding and captioning, and peak memory.

    python -m benchmarks.model_throughput --json out/model_throughput.json
    python -m benchmarks.model_throughput --presets base --batch-sizes 1,8
    python -m benchmarks.model_throughput --presets "" --models geomelt-small --tasks embed

`--presets` are seeded random models, whose captions never stop early at EOS: their captioning
numbers are the worst case, every caption running to --max-len. `--models` are trained ones
(the shipped name or a .safetensors path), timed exactly as the workers run them.
Embedding timings include the uint8 -> resized, normalised tensor step; inputs are random
uint8 chips of --chip-size pixels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from geomelt.model import GeoMelt, create_model, load, load_tokenizer
from geomelt.model.api import RANDOM_SEED, SHIPPED_MODELS, state_sha256

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def build(preset: str, device: str, dtype: torch.dtype) -> GeoMelt:
    if preset in SHIPPED_MODELS or preset.endswith(".safetensors"):
        return load(preset, device=device, dtype=dtype)
    model = create_model(preset, seed=RANDOM_SEED)
    sha = state_sha256(model)
    model = model.to(device=device, dtype=dtype)
    # base uses the XLM-R vocabulary; without beit3.spm the WordPiece ids (< 30522) still fit
    # its 64010-row tables, which is all a throughput run needs.
    return GeoMelt(model, load_tokenizer("wordpiece"), name=f"{preset}-random", sha256=sha)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def timed(fn: Callable[[], Any], device: str, min_time: float, max_reps: int) -> list[float]:
    fn()  # warm-up: allocator, kernels, lazy init
    sync(device)
    times: list[float] = []
    while len(times) < max_reps and (sum(times) < min_time or not times):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def run_one(
    model: GeoMelt, task: str, batch: int, args: argparse.Namespace, device: str
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (batch, args.chip_size, args.chip_size, 3), dtype=np.uint8)
    if task == "embed":
        fn: Callable[[], Any] = lambda: model.encode_images(chips)  # noqa: E731
    else:
        fn = lambda: model.caption(chips, beams=args.beams, max_len=args.max_len)  # noqa: E731
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = timed(fn, device, args.min_time, args.max_reps)
    median = statistics.median(times)
    return {
        "task": task,
        "batch": batch,
        "reps": len(times),
        "seconds_per_batch": median,
        "chips_per_s": batch / median,
        "peak_rss_mb": peak_rss_mb(),
        "rss_mb": psutil.Process().memory_info().rss / 2**20,
        "cuda_peak_mb": (
            torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
        ),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small", help="comma list: tiny,small,base")
    parser.add_argument(
        "--models", default="", help="comma list of trained models: geomelt-small or paths"
    )
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--tasks", default="embed,caption")
    parser.add_argument("--devices", default=None, help="default: cpu, plus cuda if available")
    parser.add_argument("--cuda-dtypes", default="fp16,bf16")
    parser.add_argument("--beams", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=32)
    parser.add_argument("--chip-size", type=int, default=256)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs")
    parser.add_argument("--max-reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    devices = args.devices.split(",") if args.devices else ["cpu"]
    if args.devices is None and torch.cuda.is_available():
        devices.append("cuda")
    combos: list[tuple[str, str]] = []
    for device in devices:
        dtypes = ["fp32"] if device == "cpu" else args.cuda_dtypes.split(",")
        combos += [(device, d) for d in dtypes]
    return combos


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'model':14} {'device':6} {'dtype':5} {'task':8} {'batch':>5} {'chips/s':>9} "
        f"{'s/batch':>8} {'reps':>4} {'peakRSS MB':>10} {'cuda MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        cuda = f"{r['cuda_peak_mb']:.0f}" if r["cuda_peak_mb"] is not None else "-"
        print(
            f"{r['preset']:14} {r['device']:6} {r['dtype']:5} {r['task']:8} {r['batch']:>5} "
            f"{r['chips_per_s']:>9.2f} {r['seconds_per_batch']:>8.3f} {r['reps']:>4} "
            f"{r['peak_rss_mb']:>10.0f} {cuda:>8}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for device, dtype_name in plan(args):
        for preset in [n for n in (*args.presets.split(","), *args.models.split(",")) if n]:
            model = build(preset, device, DTYPES[dtype_name])
            for task in args.tasks.split(","):
                for batch in (int(b) for b in args.batch_sizes.split(",")):
                    row = run_one(model, task, batch, args, device)
                    row.update(preset=preset, device=device, dtype=dtype_name)
                    rows.append(row)
                    print(
                        f"  {preset} {device} {dtype_name} {task} b={batch}: "
                        f"{row['chips_per_s']:.2f} chips/s",
                        file=sys.stderr,
                        flush=True,
                    )
            del model
    print_table(rows)
    if args.json:
        report = {
            "benchmark": "model_throughput",
            "settings": {k: str(v) for k, v in vars(args).items()},
            "machine": {
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "load_average_at_end": os.getloadavg(),
                "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            },
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
