"""Item-search filters -> SQLAlchemy WHERE clauses over `chips JOIN scenes` (bound parameters only).

Spatial predicates use PostgreSQL's native geometric types (no PostGIS), as
../shared/specs/STAC_API.md section 6.3 describes: an indexable prefilter on the `box` column,
then an exact test per part of the query geometry against the `polygon` footprint.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
from .ingest import box_text, polygon_text

__all__ = [
    "QUERYABLES",
    "Filters",
    "GeometryTooLarge",
    "InvalidFilter",
    "Queryable",
    "SqlExpression",
    "chip_item_id",
    "geometry_predicate",
    "item_id_expression",
    "parse_chip_item_id",
    "where_clauses",
]

# Coordinates beyond this many per query geometry are refused (cost of the exact predicates).
MAX_GEOMETRY_POSITIONS = 10_000


class InvalidFilter(DbError, ValueError):
    """A search filter cannot be turned into SQL; the message names the parameter."""


class GeometryTooLarge(InvalidFilter):
    """A geometry has more positions than `MAX_GEOMETRY_POSITIONS`; simplify it."""


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
    "grid:row": Queryable(Chip.row, "integer", "Chip row in the source item's grid"),
    "grid:col": Queryable(Chip.col, "integer", "Chip column in the source item's grid"),
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


def where_clauses(filters: Filters) -> list[ColumnElement[bool]]:
    """The WHERE terms of a search over `chips JOIN scenes`."""
    from .cql2sql import compile_cql2  # cql2sql uses geometry_predicate from this module

    clauses: list[ColumnElement[bool]] = [Chip.model_id == filters.model_id]
    if filters.collections is not None:
        clauses.append(Scene.collection.in_(list(filters.collections)))
    if filters.ids is not None:
        clauses.append(_ids_clause(filters.ids))
    if filters.bbox is not None:
        clauses.append(_bbox_clause(filters.bbox))
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


def _ids_clause(ids: Iterable[str]) -> ColumnElement[bool]:
    keys = [key for key in (parse_chip_item_id(item_id) for item_id in ids) if key is not None]
    if not keys:
        return false()
    return tuple_(Scene.item_id, Chip.row, Chip.col).in_(keys)


def _bbox_clause(bbox: tuple[float, float, float, float]) -> ColumnElement[bool]:
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
    positions = _count_positions(geometry, parameter)
    if positions > MAX_GEOMETRY_POSITIONS:
        raise GeometryTooLarge(
            f"{parameter}: geometry has {positions} positions, more than the "
            f"{MAX_GEOMETRY_POSITIONS} allowed; simplify it"
        )
    return _geometry_predicate(geometry, parameter)


def _geometry_predicate(geometry: Any, parameter: str) -> ColumnElement[bool]:
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind == "GeometryCollection":
        parts = geometry.get("geometries")
        if not isinstance(parts, list) or not parts:
            raise InvalidFilter(f"{parameter}: GeometryCollection needs a non-empty 'geometries'")
        return or_(*(_geometry_predicate(part, parameter) for part in parts))
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    builders = {
        "Point": lambda c: _point(_position(c, parameter)),
        "MultiPoint": lambda c: or_(*(_point(_position(p, parameter)) for p in _list(c))),
        "LineString": lambda c: _line(_positions(c, parameter, 2)),
        "MultiLineString": lambda c: or_(*(_line(_positions(p, parameter, 2)) for p in _list(c))),
        "Polygon": lambda c: _polygon(c, parameter),
        "MultiPolygon": lambda c: or_(*(_polygon(p, parameter) for p in _list(c))),
    }
    if kind not in builders:
        raise InvalidFilter(
            f"{parameter}: not a GeoJSON geometry (type {kind!r}); expected one of "
            f"{', '.join([*builders, 'GeometryCollection'])}"
        )
    if not isinstance(coordinates, list) or not coordinates:
        raise InvalidFilter(f"{parameter}: {kind} needs non-empty 'coordinates'")
    try:
        return builders[kind](coordinates)
    except (TypeError, IndexError) as exc:
        raise InvalidFilter(f"{parameter}: malformed {kind} coordinates") from exc


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise TypeError("expected a non-empty list")
    return value


def _count_positions(geometry: Any, parameter: str, depth: int = 0) -> int:
    if depth > 8:
        raise InvalidFilter(f"{parameter}: geometry nests too deeply")
    if isinstance(geometry, dict):
        if geometry.get("type") == "GeometryCollection":
            parts = geometry.get("geometries")
            return sum(_count_positions(p, parameter, depth + 1) for p in _list_or_empty(parts))
        return _count_positions(geometry.get("coordinates"), parameter, depth + 1)
    if isinstance(geometry, list):
        if geometry and not isinstance(geometry[0], list):
            return 1
        return sum(_count_positions(p, parameter, depth + 1) for p in geometry)
    return 0


def _list_or_empty(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _position(value: Any, parameter: str) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) not in (2, 3)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidFilter(f"{parameter}: a position must be [lon, lat] numbers, got {value!r}")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidFilter(
            f"{parameter}: position {value!r} is outside lon [-180, 180], lat [-90, 90]"
        )
    return lon, lat


def _positions(value: Any, parameter: str, minimum: int) -> list[tuple[float, float]]:
    points = [_position(p, parameter) for p in _list(value)]
    if len(points) < minimum:
        raise InvalidFilter(f"{parameter}: needs at least {minimum} positions, got {len(points)}")
    return points


def _point(lonlat: tuple[float, float]) -> ColumnElement[bool]:
    lon, lat = lonlat
    envelope = [(lon, lat), (lon, lat)]
    literal = cast(bindparam(None, f"({lon!r},{lat!r})", Text), _POINT)
    return and_(Chip.bbox.op("&&")(_box(envelope)), Chip.footprint.op("@>")(literal))


def _line(points: list[tuple[float, float]]) -> ColumnElement[bool]:
    path = "[" + ",".join(f"({x!r},{y!r})" for x, y in points) + "]"
    first = cast(bindparam(None, f"({points[0][0]!r},{points[0][1]!r})", Text), _POINT)
    return and_(
        Chip.bbox.op("&&")(_box(points)),
        or_(
            func.path(Chip.footprint).op("?#")(cast(bindparam(None, path, Text), _PATH)),
            Chip.footprint.op("@>")(first),
        ),
    )


def _polygon(rings: Any, parameter: str) -> ColumnElement[bool]:
    outer, *holes = [_positions(ring, parameter, 4) for ring in _list(rings)]
    try:
        outer_literal = cast(bindparam(None, polygon_text(outer), Text), Polygon)
        hole_literals = [cast(bindparam(None, polygon_text(h), Text), Polygon) for h in holes]
    except ValueError as exc:
        raise InvalidFilter(f"{parameter}: {exc}") from exc
    terms = [Chip.bbox.op("&&")(_box(outer)), Chip.footprint.op("&&")(outer_literal)]
    terms += [not_(hole.op("@>")(Chip.footprint)) for hole in hole_literals]
    return and_(*terms)
