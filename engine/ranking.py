"""Pure ranking math: reciprocal-rank fusion and Rocchio query vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["normalise", "reciprocal_rank_fusion", "rocchio"]

Vector = np.ndarray[Any, np.dtype[np.float32]]


def normalise(vector: Vector) -> Vector:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("the query vector is zero; positives and negatives cancel out")
    return (vector / norm).astype(np.float32)


def rocchio(positives: Vector, negatives: Vector | None, *, beta: float) -> Vector:
    """normalise(mean(positives) - beta * mean(negatives)), rows (N, D) normalised first."""
    query = np.mean([normalise(v) for v in positives], axis=0)
    if negatives is not None and len(negatives):
        query = query - beta * np.mean([normalise(v) for v in negatives], axis=0)
    return normalise(np.asarray(query, dtype=np.float32))


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], *, k: int = 60
) -> list[tuple[int, float]]:
    """(id, sum of 1/(k + rank)) over the rankings (rank 1-based), best first, ties by id."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
