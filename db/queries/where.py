"""What every search selects from: `chips JOIN scenes`, and the WHERE terms of validated
item-search filters (`Filters`), where the plain filters (`filters.py`) and the CQL2 filter
(`cql2sql.py`) meet."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Join, bindparam

from ..models import Chip, Scene
from .cql2sql import compile_cql2
from .filters import bbox_predicate, geometry_predicate, ids_predicate

__all__ = ["Filters", "chips_and_scenes", "where_clauses"]


@dataclass(frozen=True, kw_only=True)
class Filters:
    """Validated item-search filters; everything here narrows the candidate set."""

    model_id: int
    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    # west, south, east, north; west > east crosses the antimeridian.
    bbox: tuple[float, float, float, float] | None = None
    intersects: dict[str, Any] | None = None
    datetime_start: dt.datetime | None = None
    datetime_end: dt.datetime | None = None
    cql2: Any = None  # normalised cql2-json
    exclude_chip_ids: tuple[int, ...] = field(default=())


def chips_and_scenes() -> Join:
    """The FROM of every search: the WHERE terms refer to columns of both tables."""
    return Chip.__table__.join(Scene.__table__, Scene.id == Chip.scene_id)


def where_clauses(filters: Filters) -> list[ColumnElement[bool]]:
    """The WHERE terms of a search over `chips JOIN scenes`."""
    clauses: list[ColumnElement[bool]] = [Chip.model_id == filters.model_id]
    if filters.collections is not None:
        clauses.append(Scene.collection.in_(list(filters.collections)))
    if filters.ids is not None:
        clauses.append(ids_predicate(filters.ids))
    if filters.bbox is not None:
        clauses.append(bbox_predicate(filters.bbox))
    if filters.intersects is not None:
        clauses.append(geometry_predicate(filters.intersects, parameter="intersects"))
    if filters.datetime_start is not None:
        clauses.append(Chip.datetime >= filters.datetime_start)
    if filters.datetime_end is not None:
        clauses.append(Chip.datetime <= filters.datetime_end)
    if filters.cql2 is not None:
        clauses.append(compile_cql2(filters.cql2))
    if filters.exclude_chip_ids:
        clauses.append(
            Chip.id.not_in(bindparam("excluded", list(filters.exclude_chip_ids), expanding=True))
        )
    return clauses
