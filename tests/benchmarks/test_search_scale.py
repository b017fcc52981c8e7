"""benchmarks.search_scale runs end to end at a tiny N and writes the JSON others read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.search_scale import SELECTIVITIES, STRATEGIES, main

REQUIRED = {"strategy", "selectivity", "with_q", "recall_at_10", "p50_ms", "p95_ms", "p99_ms"}


@pytest.mark.slow  # about 30-45 s: builds 1,000 chips and two HNSW indexes
def test_search_scale_writes_a_result_per_strategy_and_selectivity(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "scale.json"
    main(
        [
            "--chips",
            "1000",
            "--queries",
            "2",
            "--compare-sample",
            "500",
            "--database-url",
            database_url,
            "--json",
            str(out),
        ]
    )
    document = json.loads(out.read_text())
    assert document["build_seconds"] > 0
    assert document["sizes"]["chips"] == 1000
    rows = document["results"]
    assert all(row.keys() >= REQUIRED for row in rows)
    assert {row["strategy"] for row in rows} == set(STRATEGIES)
    assert {row["selectivity"] for row in rows} == set(SELECTIVITIES)
    assert {row["with_q"] for row in rows} == {True, False}
    for row in rows:
        assert 0.0 <= row["recall_at_10"] <= 1.0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    exact = [row for row in rows if row["strategy"] == "exact"]
    assert all(row["recall_at_10"] == 1.0 for row in exact)  # exact is the ground truth
    assert (
        document["vector_vs_halfvec"]["halfvec"]["hnsw_bytes"]
        < (document["vector_vs_halfvec"]["vector"]["hnsw_bytes"])
    )


@pytest.mark.slow  # about 30-45 s: builds 1,000 chips, then clusters them (HNSW rebuilt)
def test_search_scale_measures_arrival_and_clustered_order(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "scale.json"
    main(
        [
            "--chips",
            "1000",
            "--queries",
            "2",
            "--compare-sample",
            "500",
            "--strategies",
            "planner",
            "--spatial-order",
            "both",
            "--selectivities",
            "1.0,0.1",
            "--database-url",
            database_url,
            "--json",
            str(out),
        ]
    )
    document = json.loads(out.read_text())
    orders = document["results_by_order"]
    assert set(orders) == {"arrival", "clustered"}
    for rows in orders.values():
        assert {row["strategy"] for row in rows} == {"exact", "planner"}
        assert all(row["recall_at_10"] == 1.0 for row in rows if row["strategy"] == "exact")
    assert document["timings"]["cluster_seconds"] > 0
