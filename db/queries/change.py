"""Change search over ground-grid cells: what changed between two date ranges, per cell.

A cell (chips.cell_id, workers/grid.py) is seen by every acquisition of its ground. For each
range, a cell's representative chip is its most complete one there (highest valid_fraction, the
latest among equals: overlapping scenes of one date are the same cell and the fuller one wins).
Cells seen in both ranges are ranked by

* `distance`: the cosine distance between the two chips' embeddings (0 = same content); or,
  with a query vector q,
* `gain`: cos(q, after) - cos(q, before), how much more the cell matches q after than before.

A chip's acquisition time is its item's start_datetime..end_datetime where the item gives one
(a year, say; ingestion stores the start as the chip's datetime), else its datetime; a chip is
in a range when that whole interval lies inside it, so an item dated "1990-2025" (unknown) is in
no ordinary range. Pages are keyset on (score desc, cell_id). The cost is
linear in the chips of the region in the two ranges (one pass each, DISTINCT ON over the
(model_id, cell_id, datetime) index).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Float,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import distinct_on

from ..models import Chip, Scene
from .filters import item_id_expression
from .where import Filters, chips_and_scenes, where_clauses

__all__ = [
    "ChangeQuery",
    "DateRange",
    "acquired_end",
    "acquired_start",
    "cell_timeline",
    "change_page",
    "count_changed_cells",
    "nearest_acquisition",
    "range_has_acquisitions",
]


@dataclass(frozen=True)
class DateRange:
    """A closed interval of acquisition times; None is an open end."""

    start: dt.datetime | None
    end: dt.datetime | None

    def overlaps(self, other: DateRange) -> bool:
        starts_before_other_ends = (
            self.start is None or other.end is None or self.start <= other.end
        )
        ends_after_other_starts = self.end is None or other.start is None or self.end >= other.start
        return starts_before_other_ends and ends_after_other_starts


@dataclass(frozen=True, kw_only=True)
class ChangeQuery:
    """A region (bbox or intersects, plus collections) and two ranges; `query_vector` ranks by
    gain of similarity to it instead of by embedding distance."""

    model_id: int
    before: DateRange
    after: DateRange
    bbox: tuple[float, float, float, float] | None = None
    intersects: dict[str, Any] | None = None
    collections: tuple[str, ...] | None = None
    query_vector: np.ndarray[Any, Any] | None = None

    def region(self, period: DateRange | None = None) -> list[ColumnElement[bool]]:
        """WHERE terms of the region's ground-grid chips (acquired within `period` if given)."""
        filters = Filters(
            model_id=self.model_id,
            collections=self.collections,
            bbox=self.bbox,
            intersects=self.intersects,
        )
        clauses = [*where_clauses(filters), Chip.cell_id.is_not(None)]
        if period is not None and period.start is not None:
            clauses.append(acquired_start() >= period.start)
        if period is not None and period.end is not None:
            clauses.append(acquired_end() <= period.end)
        return clauses


def _item_time(name: str) -> ColumnElement[dt.datetime]:
    return cast(Scene.item[("properties", name)].as_string(), DateTime(timezone=True))


def acquired_start() -> ColumnElement[dt.datetime]:
    """When a chip's acquisition began: its item's start_datetime, else its datetime."""
    return func.coalesce(_item_time("start_datetime"), Chip.datetime)


def acquired_end() -> ColumnElement[dt.datetime]:
    """When a chip's acquisition ended: its item's end_datetime, else its datetime."""
    return func.coalesce(_item_time("end_datetime"), Chip.datetime)


def _chip_columns() -> list[Any]:
    """What a change result and a timeline entry show of one chip."""
    return [
        Chip.id.label("chip_id"),
        item_id_expression().label("item_id"),
        Scene.collection,
        Chip.datetime,
        acquired_start().label("start_datetime"),
        acquired_end().label("end_datetime"),
        Chip.caption,
        Chip.valid_fraction,
        Chip.thumbnail_media_type,
        Chip.geometry,
    ]


def _representatives(where: Sequence[ColumnElement[bool]], name: str) -> Any:
    return (
        select(Chip.cell_id, *_chip_columns(), Chip.embedding)
        .select_from(chips_and_scenes())
        .where(*where)
        .ext(distinct_on(Chip.cell_id))
        .order_by(
            Chip.cell_id, Chip.valid_fraction.desc(), acquired_end().desc().nulls_last(), Chip.id
        )
        .subquery(name)
    )


def _pairs(query: ChangeQuery) -> tuple[Any, Any, ColumnElement[float], ColumnElement[float]]:
    before = _representatives(query.region(query.before), "before")
    after = _representatives(query.region(query.after), "after")
    distance = before.c.embedding.op("<=>", return_type=Float)(after.c.embedding)
    if query.query_vector is None:
        return before, after, distance, distance
    dim = int(query.query_vector.shape[0])
    vector = cast(bindparam("change_q", query.query_vector, HALFVEC()), HALFVEC(dim))

    # cos(q, after) - cos(q, before) = distance(q, before) - distance(q, after)
    to_before = before.c.embedding.op("<=>", return_type=Float)(vector)
    to_after = after.c.embedding.op("<=>", return_type=Float)(vector)
    return before, after, to_before - to_after, distance


def change_page(
    connection: Connection,
    query: ChangeQuery,
    *,
    after_key: tuple[float, str] | None,
    limit: int,
) -> list[Any]:
    """One page of changed cells, best first: `score`, `distance`, and per side (`b_`/`a_`):
    chip_id, item_id, collection, datetime, caption, valid_fraction, thumbnail_media_type;
    `geometry` is the cell's footprint (the after chip's)."""
    before, after, score, distance = _pairs(query)
    columns: list[Any] = [
        before.c.cell_id,
        score.label("score"),
        distance.label("distance"),
        after.c.geometry,
    ]
    for prefix, side in (("b_", before), ("a_", after)):
        columns += [
            getattr(side.c, name).label(prefix + name)
            for name in (
                "chip_id",
                "item_id",
                "collection",
                "datetime",
                "start_datetime",
                "end_datetime",
                "caption",
                "valid_fraction",
                "thumbnail_media_type",
            )
        ]
    pairs = select(*columns).select_from(before.join(after, after.c.cell_id == before.c.cell_id))
    ranked = pairs.subquery("ranked")
    statement: Select[Any] = select(ranked)
    if after_key is not None:
        last_score, last_cell = after_key
        bound_score = bindparam("last_score", float(last_score), type_=Float)
        bound_cell = bindparam("last_cell", str(last_cell), type_=Text)
        statement = statement.where(
            or_(
                ranked.c.score < bound_score,
                and_(ranked.c.score == bound_score, ranked.c.cell_id > bound_cell),
            )
        )
    statement = statement.order_by(ranked.c.score.desc(), ranked.c.cell_id).limit(limit)
    # The planner estimates each side at a handful of rows (`&&` at a constant 0.5 %) and would
    # join them in a nested loop, quadratic in the cells of the region (23 s for 10k cells,
    # benchmarks/change_scale.py); a hash or merge join is linear. Transaction-local.
    connection.execute(text("SET LOCAL enable_nestloop = off"))
    return list(connection.execute(statement))


def count_changed_cells(connection: Connection, query: ChangeQuery) -> int:
    """Cells of the region seen in both ranges (numberMatched)."""
    before = select(Chip.cell_id).select_from(chips_and_scenes()).where(*query.region(query.before))
    after = select(Chip.cell_id).select_from(chips_and_scenes()).where(*query.region(query.after))
    both = before.intersect(after).subquery()
    return int(connection.execute(select(func.count()).select_from(both)).scalar_one())


def range_has_acquisitions(connection: Connection, query: ChangeQuery, period: DateRange) -> bool:
    statement = (
        select(literal(1)).select_from(chips_and_scenes()).where(*query.region(period)).limit(1)
    )
    return connection.execute(statement).first() is not None


def nearest_acquisition(
    connection: Connection, query: ChangeQuery, period: DateRange
) -> dt.datetime | None:
    """The region's acquisition time nearest to `period` (outside it), or None when it has
    none at all."""
    region = query.region()
    candidates: list[tuple[dt.timedelta, dt.datetime]] = []
    if period.start is not None:
        earlier = connection.execute(
            select(func.max(acquired_end()))
            .select_from(chips_and_scenes())
            .where(*region, acquired_end() < period.start)
        ).scalar_one()
        if earlier is not None:
            candidates.append((period.start - earlier, earlier))
    if period.end is not None:
        later = connection.execute(
            select(func.min(acquired_start()))
            .select_from(chips_and_scenes())
            .where(*region, acquired_start() > period.end)
        ).scalar_one()
        if later is not None:
            candidates.append((later - period.end, later))
    return min(candidates)[1] if candidates else None


def cell_timeline(connection: Connection, *, model_id: int, cell_id: str) -> list[Any]:
    """Every chip of a cell, in date order: item_id, collection, datetime, caption,
    valid_fraction, thumbnail_media_type, geometry."""
    statement = (
        select(*_chip_columns())
        .select_from(chips_and_scenes())
        .where(Chip.model_id == model_id, Chip.cell_id == cell_id)
        .order_by(acquired_start().asc().nulls_last(), Chip.id)
    )
    return list(connection.execute(statement))
