"""benchmarks/sample_search.py: the labelled query set fits the shipped sample, and the scoring
(footprint match, nDCG@10) is right on hand-made cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.sample_search import LABELS, _inside, _ndcg_at_10, _relevant
from geomelt import SAMPLE_DIR

SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]


def test_labels_cover_at_least_15_queries_of_the_shipped_sample() -> None:
    labels = json.loads(LABELS.read_text())
    manifest = json.loads((SAMPLE_DIR / "manifest.json").read_text())
    files = {Path(entry["file"]).stem for entry in manifest}
    assert len(labels["queries"]) >= 15
    assert "looking at every chip" in labels["how"]
    for query in labels["queries"]:
        assert query["relevant"], query["q"]
        for label in query["relevant"]:
            assert label["item"] in files, label
            assert label["chip"].startswith(label["item"] + "_")


def test_footprint_match_and_ndcg() -> None:
    assert _inside((0.5, 0.5), SQUARE)
    assert not _inside((1.5, 0.5), SQUARE)
    feature = {
        "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
        "properties": {"geomelt:source_item": "a"},
    }
    query = {"relevant": [{"item": "a", "lon": 0.2, "lat": 0.8}]}
    assert _relevant(feature, query)
    # Same point, another source item (e.g. another date of the same ground): not relevant.
    assert not _relevant(feature, {"relevant": [{"item": "b", "lon": 0.2, "lat": 0.8}]})
    assert _ndcg_at_10([1, 1, 0], 2) == 1.0
    assert math.isclose(_ndcg_at_10([0, 1], 1), 1 / math.log2(3))
    assert _ndcg_at_10([0, 0], 0) == 0.0
