"""benchmarks.model_throughput times random presets and trained models and writes its JSON."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.model_throughput import main


def test_model_throughput_times_a_preset_and_the_shipped_model(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    argv = ["--presets", "tiny", "--models", "geomelt-small", "--tasks", "embed"]
    argv += ["--batch-sizes", "2", "--max-reps", "1", "--min-time", "0", "--json", str(out)]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["preset"], r["task"], r["batch"]) for r in rows] == [
        ("tiny", "embed", 2),
        ("geomelt-small", "embed", 2),
    ]
    assert all(r["chips_per_s"] > 0 and r["seconds_per_batch"] > 0 for r in rows)
