"""CQL2-json (as normalised by the `cql2` package) -> a SQLAlchemy boolean with bound parameters.

We walk the JSON ourselves instead of using `cql2.Expr.to_sql()`, which inlines literals, treats
property names as columns and emits PostGIS calls (../shared/specs/STAC_API.md section 1.7).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, false, func, not_, or_, true
from sqlalchemy.dialects.postgresql import JSONB

from .filters import QUERYABLES, InvalidFilter, Queryable, SqlExpression, geometry_predicate

__all__ = ["compile_cql2", "split_spatial"]

_COMPARISONS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_TEMPORAL = ("t_intersects", "t_before", "t_after", "t_during", "t_equals")
_ARRAY = ("a_contains", "a_containedby", "a_overlaps", "a_equals")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2}))?$")


def compile_cql2(node: Any) -> ColumnElement[bool]:
    """A boolean SQL expression for a cql2-json filter; InvalidFilter names what is wrong."""
    if node is True:
        return true()
    if node is False:
        return false()
    if not isinstance(node, dict) or "op" not in node:
        raise InvalidFilter(f"filter: expected a boolean expression, got {_short(node)}")
    op = str(node["op"]).lower()
    args = node.get("args")
    if not isinstance(args, list):
        raise InvalidFilter(f"filter: operator {op!r} needs an 'args' list")
    if op in ("and", "or"):
        parts = [compile_cql2(arg) for arg in args]
        return and_(*parts) if op == "and" else or_(*parts)
    if op == "not":
        _arity(op, args, 1)
        return not_(compile_cql2(args[0]))
    return _predicate(op, args)


def split_spatial(node: Any) -> tuple[list[dict[str, Any]], Any]:
    """(GeoJSON geometries every match intersects, the rest of the filter or True).

    For the planner's estimate (Postgres guesses a constant 0.5 % for any `&&`): only the
    `s_intersects` terms the whole filter ANDs together bound the matches; under OR or NOT
    they do not, and stay in the rest. Malformed nodes stay in the rest for compile_cql2 to
    reject with its message.
    """
    if not isinstance(node, dict) or not isinstance(node.get("args"), list):
        return [], node
    op, args = str(node.get("op", "")).lower(), node["args"]
    if op == "and":
        geometries: list[dict[str, Any]] = []
        rest = []
        for arg in args:
            found, remainder = split_spatial(arg)
            geometries += found
            if remainder is not True:
                rest.append(remainder)
        if not rest:
            return geometries, True
        return geometries, rest[0] if len(rest) == 1 else {"op": "and", "args": rest}
    if op == "s_intersects" and len(args) == 2:
        prop, geometry = args if _kind_of(args[0]) == "geometry" else args[::-1]
        if _kind_of(prop) == "geometry" and isinstance(geometry, dict):
            if "bbox" in geometry:
                geometry = _bbox_polygon(geometry["bbox"])
            return [geometry], True
    return [], node


def _predicate(op: str, args: list[Any]) -> ColumnElement[bool]:
    if op in _COMPARISONS:
        _arity(op, args, 2)
        left, right = _operands(args[0], args[1])
        return _COMPARISONS[op](left, right)
    if op == "like":
        _arity(op, args, 2)
        if _kind_of(args[0]) != "string":
            raise InvalidFilter(
                f"filter: LIKE needs a string property on the left, got {_short(args[0])}"
            )
        left, right = _operands(args[0], args[1])
        return left.like(right)
    if op == "between":
        if len(args) == 2 and isinstance(args[1], list) and len(args[1]) == 2:
            args = [args[0], *args[1]]  # the older cql2-json form [property, [low, high]]
        _arity(op, args, 3)
        value, low = _operands(args[0], args[1])
        _, high = _operands(args[0], args[2])
        return value.between(low, high)
    if op == "in":
        return _in(args)
    if op == "isnull":
        _arity(op, args, 1)
        if _kind_of(args[0]) is None:
            raise InvalidFilter(f"filter: IS NULL needs a property, got {_short(args[0])}")
        return _scalar(args[0], None).is_(None)
    if op in ("s_intersects", "s_within", "s_contains", "s_equals", "s_disjoint", "s_overlaps"):
        return _spatial(op, args)
    if op in _TEMPORAL:
        return _temporal(op, args)
    if op in _ARRAY:
        return _array(op, args)
    raise InvalidFilter(f"filter: unsupported operator {op!r}")


def _arity(op: str, args: list[Any], count: int) -> None:
    if len(args) != count:
        raise InvalidFilter(f"filter: {op!r} takes {count} arguments, got {len(args)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _queryable(node: Any) -> Queryable | None:
    if isinstance(node, dict) and "property" in node:
        name = str(node["property"])
        if name.startswith("properties."):
            name = name[len("properties.") :]
        queryable = QUERYABLES.get(name)
        if queryable is None:
            raise InvalidFilter(f"filter: unknown queryable {name!r}; see /queryables for the list")
        return queryable
    return None


def _kind_of(node: Any) -> str | None:
    if isinstance(node, dict) and node.get("op") == "casei":
        return "string"
    queryable = _queryable(node)
    return queryable.kind if queryable else None


# Kinds that compare with each other in SQL (integer and double columns do).
_FAMILY = {"integer": "number"}


def _operands(left: Any, right: Any) -> tuple[SqlExpression, SqlExpression]:
    left_kind, right_kind = _kind_of(left), _kind_of(right)
    if left_kind is None and right_kind is None:
        raise InvalidFilter(
            f"filter: a comparison needs a property on one side, got {_short(left)} and "
            f'{_short(right)}; e.g. "eo:cloud_cover" < 20'
        )
    if (
        left_kind
        and right_kind
        and _FAMILY.get(left_kind, left_kind) != _FAMILY.get(right_kind, right_kind)
    ):
        raise InvalidFilter(
            f"filter: cannot compare {_short(left)} (a {left_kind}) with {_short(right)} "
            f"(a {right_kind}); see /queryables for the types"
        )
    kind = left_kind or right_kind
    return _scalar(left, kind), _scalar(right, kind)


def _scalar(node: Any, kind: str | None) -> SqlExpression:
    """A property, a casei() call or a literal, typed after the property it is compared to."""
    queryable = _queryable(node)
    if queryable is not None:
        if queryable.kind in ("geometry", "array"):
            raise InvalidFilter(
                f"filter: {node['property']!r} is a {queryable.kind}; use spatial/array operators"
            )
        return queryable.expression
    if isinstance(node, dict) and node.get("op") == "casei":
        args = node.get("args")
        if not isinstance(args, list):
            args = []
        _arity("casei", args, 1)
        inner = _queryable(args[0])
        if inner is not None and inner.kind != "string":
            raise InvalidFilter(
                f"filter: CASEI needs a string; {args[0]['property']!r} is a {inner.kind}"
            )
        return func.lower(_scalar(args[0], "string"))
    if isinstance(node, dict) and ("timestamp" in node or "date" in node):
        return bindparam(None, _instant(node), unique=True)
    if isinstance(node, dict | list):
        raise InvalidFilter(f"filter: unsupported expression {_short(node)}")
    return bindparam(None, _literal(node, kind), unique=True)


def _literal(value: Any, kind: str | None) -> Any:
    if value is None:
        return None
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidFilter(f"filter: expected a number, got {_short(value)}")
        return float(value)
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidFilter(f"filter: expected a string, got {_short(value)}")
        return value
    if kind == "datetime":
        if not isinstance(value, str):
            raise InvalidFilter(f"filter: expected a timestamp, got {_short(value)}")
        return _parse_time(value)
    return value


def _parse_time(text: str) -> dt.datetime:
    if not _RFC3339.match(text):
        raise InvalidFilter(f"filter: {text!r} is not an RFC 3339 date or timestamp")
    try:
        parsed = dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidFilter(f"filter: {text!r} is not a valid date or timestamp") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _instant(node: dict[str, Any]) -> dt.datetime:
    return _parse_time(str(node.get("timestamp") or node.get("date")))


def _in(args: list[Any]) -> ColumnElement[bool]:
    _arity("in", args, 2)
    if not isinstance(args[1], list):
        raise InvalidFilter("filter: 'in' needs a list on the right")
    kind = _kind_of(args[0])
    if kind is None:
        raise InvalidFilter(f"filter: IN needs a property on the left, got {_short(args[0])}")
    left = _scalar(args[0], kind)
    values = [_literal(v, kind) for v in args[1]]
    if isinstance(args[0], dict) and args[0].get("op") == "casei":
        values = [str(v).lower() for v in values]
    return left.in_(bindparam(None, values, expanding=True, unique=True))


def _spatial(op: str, args: list[Any]) -> ColumnElement[bool]:
    _arity(op, args, 2)
    if op not in ("s_intersects", "s_disjoint"):
        # Footprints are PostgreSQL polygons (no PostGIS): intersects is exact on them; within,
        # contains, equals, overlaps, touches and crosses are not offered rather than guessed.
        raise InvalidFilter(
            f"filter: spatial operator {op!r} is not supported; supported: s_intersects, "
            "s_disjoint (and bbox/intersects)"
        )
    prop, geometry = args
    if _kind_of(prop) != "geometry":
        prop, geometry = geometry, prop
    if _kind_of(prop) != "geometry":
        raise InvalidFilter(f"filter: {op} needs the 'geometry' queryable as one argument")
    if isinstance(geometry, dict) and "bbox" in geometry:
        geometry = _bbox_polygon(geometry["bbox"])
    predicate = geometry_predicate(geometry, parameter="filter")
    return not_(predicate) if op == "s_disjoint" else predicate


def _bbox_polygon(bbox: Any) -> dict[str, Any]:
    if not isinstance(bbox, list) or len(bbox) not in (4, 6):
        raise InvalidFilter("filter: BBOX needs 4 or 6 numbers")
    west, south, east, north = (
        (bbox[0], bbox[1], bbox[2], bbox[3])
        if len(bbox) == 4
        else (
            bbox[0],
            bbox[1],
            bbox[3],
            bbox[4],
        )
    )
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _temporal(op: str, args: list[Any]) -> ColumnElement[bool]:
    _arity(op, args, 2)
    prop, value = args
    if _kind_of(prop) != "datetime":
        raise InvalidFilter(f"filter: {op} needs a datetime queryable as its first argument")
    column = _scalar(prop, "datetime")
    start, end = _time_range(value, op)
    if op == "t_before":
        return column < start if start is not None else false()
    if op == "t_after":
        return column > end if end is not None else false()
    terms = []
    strict = op == "t_during"
    if start is not None:
        terms.append(column > start if strict else column >= start)
    if end is not None:
        terms.append(column < end if strict else column <= end)
    if op == "t_equals":
        return and_(column == start, column == end)
    return and_(true(), *terms)


def _time_range(value: Any, op: str) -> tuple[Any, Any]:
    if isinstance(value, dict) and "interval" in value:
        bounds = value["interval"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise InvalidFilter(f"filter: {op} interval needs two bounds")
        start, end = (None if b == ".." else _instant_any(b) for b in bounds)
        return (
            bindparam(None, start, unique=True) if start else None,
            bindparam(None, end, unique=True) if end else None,
        )
    if isinstance(value, dict) and ("timestamp" in value or "date" in value):
        instant: BindParameter[dt.datetime] = bindparam(None, _instant(value), unique=True)
        return instant, instant
    raise InvalidFilter(f"filter: {op} needs a TIMESTAMP, DATE or INTERVAL, got {_short(value)}")


def _instant_any(bound: Any) -> dt.datetime:
    if isinstance(bound, dict):
        return _instant(bound)
    return _parse_time(str(bound))


def _array(op: str, args: list[Any]) -> ColumnElement[bool]:
    _arity(op, args, 2)
    prop, values = args
    queryable = _queryable(prop)
    if queryable is None or queryable.kind != "array" or not isinstance(values, list):
        raise InvalidFilter(f"filter: {op} needs an array queryable and a list")
    literal = bindparam(None, values, type_=JSONB, unique=True)
    column = queryable.expression
    if op == "a_contains":
        return column.op("@>")(literal)
    if op == "a_containedby":
        return column.op("<@")(literal)
    if op == "a_equals":
        return and_(column.op("@>")(literal), column.op("<@")(literal))
    items: BindParameter[list[str]] = bindparam(None, [str(v) for v in values], unique=True)
    return column.op("?|")(items)
