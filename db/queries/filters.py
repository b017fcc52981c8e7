"""What item searches filter on: the queryables, chip item ids, and spatial predicates (a bbox, any
GeoJSON geometry) as SQLAlchemy terms over `chips JOIN scenes` (bound parameters only).

The terms are combined into a search's WHERE clause by `where.py`; CQL2 filters by `cql2sql.py`.
Spatial predicates use PostgreSQL's native geometric types (no PostGIS), as
../shared/specs/STAC_API.md section 6.3 describes: an indexable prefilter on the `box` column,
then an exact test per part of the query geometry against the `polygon` footprint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    bindparam,
    cast,
    false,
    func,
    not_,
    or_,
    tuple_,
)
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.types import UserDefinedType

from ..errors import DbError
from ..models import Box, Chip, Polygon, Scene
from ..parsing import GeometryPart, InvalidValue, LonLat, parse_geometry
from .ingest import box_text, polygon_text

__all__ = [
    "QUERYABLES",
    "InvalidFilter",
    "Queryable",
    "SqlExpression",
    "bbox_predicate",
    "chip_item_id",
    "geometry_predicate",
    "ids_predicate",
    "item_id_expression",
    "parse_chip_item_id",
]


class InvalidFilter(DbError, ValueError):
    """A search filter cannot be turned into SQL; the message names the parameter."""


class _PgGeometric(UserDefinedType[str]):
    """A native geometric type for casts of bound text literals (`point`, `path`)."""

    cache_ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_col_spec(self, **kw: Any) -> str:
        return self.name


# A queryable's SQL: a Core expression or a mapped attribute (both compile to the same column).
SqlExpression = ColumnElement[Any] | QueryableAttribute[Any]

_POINT = _PgGeometric("point")
_PATH = _PgGeometric("path")


@dataclass(frozen=True)
class Queryable:
    """A filterable/sortable property: its SQL expression, JSON-Schema type and sort sentinel."""

    expression: SqlExpression
    kind: str  # string | number | integer | datetime | geometry | array
    description: str
    sortable: bool = True


def item_id_expression() -> ColumnElement[str]:
    """The STAC item id of a chip: `<source item id>_<row>_<col>`."""
    return Scene.item_id + "_" + cast(Chip.row, Text) + "_" + cast(Chip.col, Text)


def chip_item_id(source_item_id: str, row: int, col: int) -> str:
    return f"{source_item_id}_{row}_{col}"


_CHIP_ID = re.compile(r"^(.+)_(\d{1,9})_(\d{1,9})$", re.DOTALL)


def parse_chip_item_id(item_id: str) -> tuple[str, int, int] | None:
    match = _CHIP_ID.match(item_id)
    if match is None:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3))


def _source_property(name: str) -> ColumnElement[Any]:
    return Scene.item[("properties", name)]


QUERYABLES: dict[str, Queryable] = {
    "id": Queryable(item_id_expression(), "string", "Chip item id"),
    "collection": Queryable(Scene.collection, "string", "Source collection id"),
    "geometry": Queryable(Chip.footprint, "geometry", "Chip footprint", sortable=False),
    "datetime": Queryable(Chip.datetime, "datetime", "Acquisition time of the source item"),
    "created": Queryable(Chip.created_at, "datetime", "When the chip was indexed"),
    "updated": Queryable(Scene.updated_at, "datetime", "When the source item last changed"),
    "caption": Queryable(Chip.caption, "string", "Generated caption of the chip"),
    "scene_id": Queryable(Scene.item_id, "string", "Source item id"),
    "grid:row": Queryable(Chip.row, "integer", "Row of the chip's ground-grid cell"),
    "grid:col": Queryable(Chip.col, "integer", "Column of the chip's ground-grid cell"),
    "valid_fraction": Queryable(Chip.valid_fraction, "number", "Fraction of valid pixels"),
    "mean_brightness": Queryable(Chip.mean_brightness, "number", "Mean brightness (0-255)"),
    "eo:cloud_cover": Queryable(
        _source_property("eo:cloud_cover").as_float(), "number", "Cloud cover of the source item"
    ),
    "gsd": Queryable(_source_property("gsd").as_float(), "number", "Ground sample distance (m)"),
    "mission": Queryable(_source_property("mission").as_string(), "string", "Mission"),
    "platform": Queryable(_source_property("platform").as_string(), "string", "Platform"),
    "constellation": Queryable(
        _source_property("constellation").as_string(), "string", "Constellation"
    ),
    "instruments": Queryable(
        _source_property("instruments"), "array", "Instruments", sortable=False
    ),
}


def ids_predicate(ids: Iterable[str]) -> ColumnElement[bool]:
    """The chips with these STAC item ids; an id that is no chip's matches nothing."""
    keys = [key for key in (parse_chip_item_id(item_id) for item_id in ids) if key is not None]
    if not keys:
        return false()
    return tuple_(Scene.item_id, Chip.row, Chip.col).in_(keys)


def bbox_predicate(bbox: tuple[float, float, float, float]) -> ColumnElement[bool]:
    """Footprint-intersects-box; west > east crosses the antimeridian."""
    west, south, east, north = bbox
    if west > east:  # antimeridian: two boxes
        return or_(
            _envelope_polygon((west, south, 180.0, north)),
            _envelope_polygon((-180.0, south, east, north)),
        )
    return _envelope_polygon(bbox)


def _envelope_polygon(bbox: tuple[float, float, float, float]) -> ColumnElement[bool]:
    west, south, east, north = bbox
    ring = [(west, south), (east, south), (east, north), (west, north)]
    if west == east or south == north:  # a degenerate box is a line or point: widen by a hair
        ring = [(west, south), (east + 1e-9, south), (east + 1e-9, north + 1e-9), (west, north)]
    return and_(
        Chip.bbox.op("&&")(_box(ring)),
        Chip.footprint.op("&&")(cast(bindparam(None, polygon_text(ring), Text), Polygon)),
    )


def _box(ring: Sequence[tuple[float, float]]) -> ColumnElement[Any]:
    return cast(bindparam(None, box_text(ring), Text), Box)


def geometry_predicate(geometry: Any, *, parameter: str) -> ColumnElement[bool]:
    """Footprint-intersects-geometry for any GeoJSON geometry (all seven types)."""
    try:
        parts = parse_geometry(geometry, parameter)
    except InvalidValue as exc:
        raise InvalidFilter(str(exc)) from exc
    return or_(*(_part_predicate(part) for part in parts))


def _part_predicate(part: GeometryPart) -> ColumnElement[bool]:
    if part.kind == "point":
        return _point(part.rings[0][0])
    if part.kind == "line":
        return _line(part.rings[0])
    return _polygon(part.rings)


def _point(lonlat: tuple[float, float]) -> ColumnElement[bool]:
    lon, lat = lonlat
    envelope = [(lon, lat), (lon, lat)]
    literal = cast(bindparam(None, f"({lon!r},{lat!r})", Text), _POINT)
    return and_(Chip.bbox.op("&&")(_box(envelope)), Chip.footprint.op("@>")(literal))


def _line(points: Sequence[LonLat]) -> ColumnElement[bool]:
    path = "[" + ",".join(f"({x!r},{y!r})" for x, y in points) + "]"
    first = cast(bindparam(None, f"({points[0][0]!r},{points[0][1]!r})", Text), _POINT)
    return and_(
        Chip.bbox.op("&&")(_box(points)),
        or_(
            func.path(Chip.footprint).op("?#")(cast(bindparam(None, path, Text), _PATH)),
            Chip.footprint.op("@>")(first),
        ),
    )


def _polygon(rings: Sequence[Sequence[LonLat]]) -> ColumnElement[bool]:
    outer, *holes = rings
    outer_literal = cast(bindparam(None, polygon_text(outer), Text), Polygon)
    hole_literals = [cast(bindparam(None, polygon_text(h), Text), Polygon) for h in holes]
    terms = [Chip.bbox.op("&&")(_box(outer)), Chip.footprint.op("&&")(outer_literal)]
    terms += [not_(hole.op("@>")(Chip.footprint)) for hole in hole_literals]
    return and_(*terms)
