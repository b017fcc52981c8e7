"""Finding a ranked search's candidates: the vector step (estimate the filtered count, pick
exact or HNSW, fetch the neighbours) and the keyword step (captions matching the phrases).

Ranked search runs in steps inside one transaction (../shared/specs/STAC_API.md section 4.1):
estimate the filtered count (EXPLAIN), pick exact or HNSW, fetch the vector neighbours (and the
keyword matches), let the caller fuse them, then page over the fused list with
`pages.page_select(..., ranked=...)`. All user values are bound parameters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Connection,
    Executable,
    Select,
    bindparam,
    cast,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from ..models import Chip, ChipCell
from ..parsing import geometry_positions
from .cql2sql import split_spatial
from .where import Filters, chips_and_scenes, where_clauses

__all__ = [
    "EXACT_THRESHOLD",
    "VectorPlan",
    "count_matches",
    "ef_search_floor",
    "estimate_candidates",
    "estimate_matches",
    "keyword_ranks",
    "model_chips",
    "plan_vector_search",
    "planned_neighbours",
    "total_chips",
    "vector_neighbours",
]

# Planner constants, measured by benchmarks/search_scale.py (docs/SCALING.md): filters estimated
# to keep at most EXACT_THRESHOLD chips run exact; broader ones run HNSW with an iterative scan,
# ef_search = clamp(EF_SEARCH_PER_RESULT x depth, ef_search_floor(chips), 1000) and a scan budget
# of SCAN_SAFETY x depth / selectivity tuples (at least pgvector's default 20,000).
EXACT_THRESHOLD = 5_000  # 100k-chip run: crossover at 4,694 candidates (docs/SCALING.md)
EF_SEARCH_PER_RESULT = 4
SCAN_SAFETY = 4
# The same ef_search finds fewer true neighbours in a bigger graph: ef 100 gave recall@10 0.98
# at 100k chips but 0.86-0.94 at 1M. The floor grows with sqrt(chips): 126 at 100k, 400 at 1M.
EF_SEARCH_FLOOR_AT = (100, 62_500)  # (ef_search, chips)
EF_SEARCH_MAX = 1000


def ef_search_floor(chips: int) -> int:
    """The smallest ef_search the planner uses on an index over `chips` chips."""
    ef, at = EF_SEARCH_FLOOR_AT
    return min(EF_SEARCH_MAX, max(ef, round(ef * math.sqrt(max(chips, 1) / at))))


@dataclass(frozen=True)
class VectorPlan:
    """How the vector step runs; reported as `search:info` and `X-Search-Strategy`."""

    strategy: str  # "exact" | "hnsw"
    estimated_candidates: int
    ef_search: int | None = None
    max_scan_tuples: int | None = None
    # "relaxed_order" for the planner; "off" is plain post-filtered HNSW (benchmark baseline).
    iterative_scan: str = "relaxed_order"
    estimated_from: str = "explain"  # "explain" | "cells" (spatial filter: chip_cells counts)
    fallback_from: str | None = None  # "hnsw" when HNSW ran short and exact ran after it

    def info(self) -> dict[str, Any]:
        """The JSON-safe description of the plan that ran."""
        described: dict[str, Any] = {
            "strategy": self.strategy,
            "estimated_candidates": self.estimated_candidates,
            "estimated_from": self.estimated_from,
        }
        if self.strategy == "hnsw":
            described.update(
                ef_search=self.ef_search,
                iterative_scan=self.iterative_scan,
                max_scan_tuples=self.max_scan_tuples,
            )
        if self.fallback_from is not None:
            described["fallback_from"] = self.fallback_from
        return described


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


def estimate_matches(connection: Connection, where: Sequence[ColumnElement[bool]]) -> int:
    """The planner's row estimate for the filters (planning only, about a millisecond)."""
    plan = connection.execute(
        _Explain(select(literal(1)).select_from(chips_and_scenes()).where(*where))
    )
    document = plan.scalar_one()
    if isinstance(document, str):
        document = json.loads(document)
    return int(document[0]["Plan"]["Plan Rows"])


def count_matches(connection: Connection, where: Sequence[ColumnElement[bool]]) -> int:
    return int(
        connection.execute(
            select(func.count()).select_from(chips_and_scenes()).where(*where)
        ).scalar_one()
    )


def total_chips(connection: Connection) -> int:
    estimate = connection.execute(
        text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'chips'::regclass")
    ).scalar_one()
    return max(int(estimate), 1)


def _envelopes(
    filters: Filters, cql2_geometries: Sequence[dict[str, Any]]
) -> list[tuple[float, float, float, float]] | None:
    """West, south, east, north boxes that hold every spatial match; None: no spatial filter.

    A chip must pass every spatial term (bbox, intersects, `cql2_geometries`: the s_intersects
    ANDed into the CQL2 filter), so the term with the smallest area bounds the count.
    """
    bounds: list[list[tuple[float, float, float, float]]] = []
    if filters.bbox is not None:
        west, south, east, north = filters.bbox
        if west > east:  # antimeridian
            bounds.append([(west, south, 180.0, north), (-180.0, south, east, north)])
        else:
            bounds.append([(west, south, east, north)])
    geometries = [filters.intersects] if filters.intersects is not None else []
    for geometry in [*geometries, *cql2_geometries]:
        points = list(geometry_positions(geometry))
        if points:
            xs = [x for x, _ in points]
            ys = [y for _, y in points]
            bounds.append([(min(xs), min(ys), max(xs), max(ys))])
    if not bounds:
        return None
    return min(bounds, key=lambda boxes: sum(map(_area, boxes)))


def _area(box: tuple[float, float, float, float]) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


_CELL_CHIPS = text(
    """
    SELECT coalesce(sum(chips * greatest(0, least(cell_x + 1, :east) - greatest(cell_x, :west))
                              * greatest(0, least(cell_y + 1, :north) - greatest(cell_y, :south))),
                    0)
    FROM chip_cells
    WHERE model_id = :model_id AND cell_x BETWEEN floor(:west) AND floor(:east)
      AND cell_y BETWEEN floor(:south) AND floor(:north)
    """
)


def model_chips(connection: Connection, model_id: int) -> int:
    """The exact number of a model's chips (from chip_cells: a few hundred rows, not a count)."""
    statement = select(func.coalesce(func.sum(ChipCell.chips), 0)).where(
        ChipCell.model_id == model_id
    )
    return int(connection.execute(statement).scalar_one())


def estimate_candidates(connection: Connection, filters: Filters) -> tuple[int, str]:
    """Estimated chips passing the filters, and where the estimate came from.

    Without a spatial filter: the Postgres planner's estimate (EXPLAIN, about a millisecond).
    With one: chips of the chip_cells cells under the query envelope, each cell weighted by the
    share of it the envelope covers (chips assumed even within a 1° cell), times the share of
    the model's chips that pass the other filters (EXPLAIN; the filters assumed independent).
    Postgres itself would guess a constant 0.5 % for any `&&`.
    """
    cql2_geometries, cql2_rest = split_spatial(filters.cql2)  # ([], None) without a filter
    boxes = _envelopes(filters, cql2_geometries)
    if boxes is None:
        return estimate_matches(connection, where_clauses(filters)), "explain"
    total = model_chips(connection, filters.model_id)
    if total == 0:
        return 0, "cells"
    spatial = 0.0
    for west, south, east, north in boxes:
        spatial += float(
            connection.execute(
                _CELL_CHIPS,
                {
                    "model_id": filters.model_id,
                    "west": west,
                    "south": south,
                    "east": east,
                    "north": north,
                },
            ).scalar_one()
        )
    others = replace(
        filters, bbox=None, intersects=None, cql2=None if cql2_rest is True else cql2_rest
    )
    others_share = min(1.0, estimate_matches(connection, where_clauses(others)) / total)
    estimate = spatial * others_share
    return (max(1, round(estimate)) if estimate > 0 else 0), "cells"


def plan_vector_search(
    connection: Connection,
    filters: Filters,
    *,
    depth: int,
    exact_threshold: int = EXACT_THRESHOLD,
) -> VectorPlan:
    """Exact for selective filters, HNSW with iterative scan sized to the selectivity otherwise.

    Exact when the estimate is at most `exact_threshold` (measured by benchmarks.search_scale),
    or when HNSW would expect to visit more index tuples (`depth / selectivity`) than the exact
    plan reads rows (deep rankings under middling filters).
    """
    estimate, source = estimate_candidates(connection, filters)
    total = model_chips(connection, filters.model_id) or total_chips(connection)
    selectivity = min(1.0, max(estimate, 1) / total)
    expected_scan = depth / selectivity
    if estimate <= exact_threshold or expected_scan >= estimate:
        return VectorPlan("exact", estimate, estimated_from=source)
    ef_search = min(max(EF_SEARCH_PER_RESULT * depth, ef_search_floor(total)), EF_SEARCH_MAX)
    max_scan = int(min(max(expected_scan * SCAN_SAFETY, 20_000), 1_000_000))
    return VectorPlan(
        "hnsw", estimate, ef_search=ef_search, max_scan_tuples=max_scan, estimated_from=source
    )


def planned_neighbours(
    connection: Connection,
    filters: Filters,
    query_vector: np.ndarray[Any, Any],
    *,
    dim: int,
    depth: int,
    exact_threshold: int = EXACT_THRESHOLD,
) -> tuple[list[tuple[int, float]], VectorPlan]:
    """The planner's nearest filtered chips and the plan that produced them.

    If HNSW returns fewer than `depth` rows (its scan budget ran out before enough rows passed
    the filters), exact runs once and the plan says so (`fallback_from`).
    """
    where = where_clauses(filters)
    plan = plan_vector_search(connection, filters, depth=depth, exact_threshold=exact_threshold)
    neighbours = vector_neighbours(connection, where, query_vector, dim=dim, depth=depth, plan=plan)
    if plan.strategy == "hnsw" and len(neighbours) < depth:
        plan = replace(plan, strategy="exact", fallback_from="hnsw")
        neighbours = vector_neighbours(
            connection, where, query_vector, dim=dim, depth=depth, plan=plan
        )
    return neighbours, plan


def vector_neighbours(
    connection: Connection,
    where: Sequence[ColumnElement[bool]],
    query_vector: np.ndarray[Any, Any],
    *,
    dim: int,
    depth: int,
    plan: VectorPlan,
) -> list[tuple[int, float]]:
    """(chip id, cosine distance) of the `depth` nearest filtered chips, nearest first.

    `embedding::halfvec(D) <=> q` with `model_id = N` in `where` is the expression the per-model
    partial HNSW index covers. Exact: `distance + 0` keeps the index out. HNSW: settings are
    `SET LOCAL` (via set_config(..., true)) and rows are re-sorted exactly outside a
    materialised CTE, because relaxed_order may return them slightly out of order.
    """
    vector = cast(bindparam("query_vector", query_vector, HALFVEC()), HALFVEC(dim))
    distance = cast(Chip.embedding, HALFVEC(dim)).cosine_distance(vector)
    inner = select(Chip.id.label("chip_id"), distance.label("distance")).select_from(
        chips_and_scenes()
    )
    inner = inner.where(*where)
    if plan.strategy == "exact":
        statement = inner.order_by((distance + 0).asc(), Chip.id).limit(depth)
        return [(int(r.chip_id), float(r.distance)) for r in connection.execute(statement)]
    settings = [("hnsw.iterative_scan", plan.iterative_scan)]
    if plan.ef_search is not None:
        settings.append(("hnsw.ef_search", str(plan.ef_search)))
    if plan.max_scan_tuples is not None:
        settings.append(("hnsw.max_scan_tuples", str(plan.max_scan_tuples)))
    # Postgres would pick seq scan + sort over the index for small tables, and bitmap scan +
    # sort under filters it misestimates (a constant 0.5 % for `&&`): with sorts disabled only
    # the index-ordered plan is left, so "hnsw" is what runs. Restored right after.
    settings.append(("enable_sort", "off"))
    for name, value in settings:
        connection.execute(select(func.set_config(name, value, True)))
    candidates = inner.order_by(distance).limit(depth).cte("candidates").prefix_with("MATERIALIZED")
    statement = select(candidates.c.chip_id, candidates.c.distance).order_by(
        (candidates.c.distance + 0).asc(), candidates.c.chip_id
    )
    rows = [(int(r.chip_id), float(r.distance)) for r in connection.execute(statement)]
    connection.execute(
        text(
            "SELECT set_config('enable_sort', reset_val, true) FROM pg_settings "
            "WHERE name = 'enable_sort'"
        )
    )
    return rows


def keyword_ranks(
    connection: Connection,
    where: Sequence[ColumnElement[bool]],
    phrases: Sequence[str],
    *,
    depth: int,
) -> list[tuple[int, float]]:
    """(chip id, ts_rank_cd) of captions matching any phrase (websearch syntax), best first."""
    queries: list[ColumnElement[Any]] = [
        func.websearch_to_tsquery("english", bindparam(None, p, unique=True)) for p in phrases
    ]
    # tsquery || tsquery is OR. Paired up as a balanced tree: a left-deep chain of n phrases
    # nests n levels and SQLAlchemy's compiler recursed past Python's limit at ~160.
    while len(queries) > 1:
        pairs = [a.op("||")(b) for a, b in zip(queries[::2], queries[1::2], strict=False)]
        queries = pairs + queries[len(pairs) * 2 :]
    tsquery = queries[0]
    rank = func.ts_rank_cd(Chip.caption_tsv, tsquery)
    statement = (
        select(Chip.id.label("chip_id"), rank.label("rank"))
        .select_from(chips_and_scenes())
        .where(*where, Chip.caption_tsv.op("@@")(tsquery))
        .order_by(rank.desc(), Chip.id)
        .limit(depth)
    )
    return [(int(r.chip_id), float(r.rank)) for r in connection.execute(statement)]
