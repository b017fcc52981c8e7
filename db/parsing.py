"""Parsing of the search values every part reads: bounding boxes, RFC 3339 date-times and
intervals, GeoJSON geometries.

Pure functions, no database: here because `db` is the one part that the engine, the workers and
the CLI may all import (docs/ARCHITECTURE.md). Errors are `InvalidValue` naming the parameter;
each caller translates it once into its own error (HTTP 400, InvalidSource, a click error).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_GEOMETRY_POSITIONS",
    "BBox",
    "GeometryPart",
    "GeometryTooLarge",
    "InvalidValue",
    "LonLat",
    "bbox_numbers",
    "byte_range",
    "geometry_positions",
    "loose_instant",
    "parse_bbox",
    "parse_geometry",
    "parse_instant",
    "parse_interval",
]

# Coordinates beyond this many per query geometry are refused (cost of the exact predicates).
MAX_GEOMETRY_POSITIONS = 10_000
# Deeper than any GeoJSON geometry (a MultiPolygon's position is 4 levels down): a hostile
# body nested thousands deep must not exhaust the stack.
_MAX_GEOMETRY_DEPTH = 8

BBox = tuple[float, float, float, float]  # west, south, east, north; west > east: antimeridian
LonLat = tuple[float, float]

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)


class InvalidValue(ValueError):
    """A bbox, date-time or geometry is malformed; the message names the parameter and the fix."""


class GeometryTooLarge(InvalidValue):
    """A geometry has more positions than `MAX_GEOMETRY_POSITIONS`; simplify it."""


# --- bounding boxes ---------------------------------------------------------------------------


def bbox_numbers(text: str, parameter: str = "bbox") -> list[float]:
    """'w,s,e,n' (or with elevations) -> numbers, unchecked: `parse_bbox` checks them."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError as exc:
        raise InvalidValue(
            f"{parameter}: {text!r} is not a comma-separated list of numbers"
        ) from exc


def parse_bbox(value: Any, parameter: str = "bbox", *, allow_elevation: bool = True) -> BBox:
    """4 numbers (or 6, with elevations) in lon/lat degrees -> (west, south, east, north).

    West > east is allowed: the box crosses the antimeridian (STAC API item search).
    """
    counts = "4 or 6" if allow_elevation else "4"
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise InvalidValue(f"{parameter}: expected {counts} numbers west,south,east,north")
    if len(value) not in ((4, 6) if allow_elevation else (4,)):
        raise InvalidValue(
            f"{parameter}: expected {counts} numbers west,south,east,north, got {len(value)}"
        )
    numbers = [float(v) for v in value]
    if not all(math.isfinite(v) for v in numbers):
        raise InvalidValue(f"{parameter}: numbers must be finite")
    if len(numbers) == 6:
        west, south, low, east, north, high = numbers
        if low > high:
            raise InvalidValue(f"{parameter}: minimum elevation is above the maximum")
    else:
        west, south, east, north = numbers
    if not all(-180 <= v <= 180 for v in (west, east)) or not all(
        -90 <= v <= 90 for v in (south, north)
    ):
        raise InvalidValue(
            f"{parameter} {list(value)}: out of range; longitudes must be in [-180, 180], "
            "latitudes in [-90, 90]"
        )
    if south > north:
        raise InvalidValue(
            f"{parameter} {list(value)}: south > north; the order is west, south, east, north"
        )
    return west, south, east, north


# --- date-times -------------------------------------------------------------------------------


def parse_instant(text: str, parameter: str = "datetime") -> dt.datetime:
    """A strict RFC 3339 date-time (a zone is required) -> an aware datetime."""
    match = _RFC3339.match(text)
    if match is None:
        raise InvalidValue(
            f"{parameter}: {text!r} is not an RFC 3339 date-time (e.g. 2024-05-01T10:00:00Z)"
        )
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7) or ""
    microsecond = int((fraction[1:] + "000000")[:6]) if fraction else 0
    zone = match.group(8).upper()
    try:
        offset = dt.timedelta(0)
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            offset = sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        return dt.datetime(
            year, month, day, hour, minute, second, microsecond, tzinfo=dt.timezone(offset)
        )
    except ValueError as exc:
        raise InvalidValue(f"{parameter}: {text!r} is not a valid date-time ({exc})") from exc


def parse_interval(
    value: Any, parameter: str = "datetime"
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """An instant (start == end) or an interval `A/B` (`..` or empty: open) -> (start, end)."""
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{parameter}: expected an RFC 3339 instant or interval string")
    parts = value.split("/")
    if len(parts) == 1:
        instant = parse_instant(parts[0], parameter)
        return instant, instant
    if len(parts) != 2:
        raise InvalidValue(f"{parameter}: {value!r} has more than one '/'")
    start_text, end_text = parts
    start = None if start_text in ("", "..") else parse_instant(start_text, parameter)
    end = None if end_text in ("", "..") else parse_instant(end_text, parameter)
    if start is None and end is None:
        raise InvalidValue(f"{parameter}: {value!r} is open at both ends")
    if start is not None and end is not None and end < start:
        raise InvalidValue(f"{parameter}: {value!r} ends before it starts")
    return start, end


def loose_instant(value: Any) -> dt.datetime | None:
    """A time stamp of someone else's STAC item, or None when it is absent or unreadable.

    Lenient where `parse_instant` is strict: catalogs in the wild write dates without a time or
    a zone (taken as UTC); one bad field must not stop the ingestion of the rest.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# --- GeoJSON geometries -----------------------------------------------------------------------


@dataclass(frozen=True)
class GeometryPart:
    """One simple part of a checked geometry.

    kind "point": rings holds one ring of one position; "line": one ring of >= 2 positions;
    "polygon": the outer ring, then the holes, each of >= 4 positions (closed or not).
    """

    kind: str
    rings: tuple[tuple[LonLat, ...], ...]


def parse_geometry(geometry: Any, parameter: str) -> list[GeometryPart]:
    """Any GeoJSON geometry (all seven types) -> its parts, every position checked."""
    positions = _count_positions(geometry, parameter)
    if positions > MAX_GEOMETRY_POSITIONS:
        raise GeometryTooLarge(
            f"{parameter}: geometry has {positions} positions, more than the "
            f"{MAX_GEOMETRY_POSITIONS} allowed; simplify it"
        )
    return _parts(geometry, parameter)


def geometry_positions(geometry: Any) -> Iterator[LonLat]:
    """Every [lon, lat] position of a geometry, in order; what is not a position is skipped."""
    if isinstance(geometry, dict):
        yield from geometry_positions(geometry.get("coordinates", geometry.get("geometries")))
    elif isinstance(geometry, list):
        if len(geometry) >= 2 and all(isinstance(v, int | float) for v in geometry[:2]):
            yield float(geometry[0]), float(geometry[1])
        else:
            for part in geometry:
                yield from geometry_positions(part)


def _parts(geometry: Any, parameter: str) -> list[GeometryPart]:
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind == "GeometryCollection":
        members = geometry.get("geometries")
        if not isinstance(members, list) or not members:
            raise InvalidValue(f"{parameter}: GeometryCollection needs a non-empty 'geometries'")
        return [part for member in members for part in _parts(member, parameter)]
    if kind not in _GEOMETRY_TYPES:
        raise InvalidValue(
            f"{parameter}: not a GeoJSON geometry (type {kind!r}); expected one of "
            f"{', '.join(_GEOMETRY_TYPES)}"
        )
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or not coordinates:
        raise InvalidValue(f"{parameter}: {kind} needs non-empty 'coordinates'")
    try:
        return _simple_parts(kind, coordinates, parameter)
    except (TypeError, IndexError) as exc:
        raise InvalidValue(f"{parameter}: malformed {kind} coordinates") from exc


def _simple_parts(kind: str, coordinates: list[Any], parameter: str) -> list[GeometryPart]:
    if kind == "Point":
        return [GeometryPart("point", ((_position(coordinates, parameter),),))]
    if kind == "MultiPoint":
        return [GeometryPart("point", ((_position(p, parameter),),)) for p in _list(coordinates)]
    if kind == "LineString":
        return [GeometryPart("line", (_positions(coordinates, parameter, 2),))]
    if kind == "MultiLineString":
        return [GeometryPart("line", (_positions(p, parameter, 2),)) for p in _list(coordinates)]
    if kind == "Polygon":
        return [_polygon(coordinates, parameter)]
    return [_polygon(rings, parameter) for rings in _list(coordinates)]


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise TypeError("expected a non-empty list")
    return value


def _count_positions(geometry: Any, parameter: str, depth: int = 0) -> int:
    if depth > _MAX_GEOMETRY_DEPTH:
        raise InvalidValue(f"{parameter}: geometry nests too deeply")
    if isinstance(geometry, dict):
        if geometry.get("type") == "GeometryCollection":
            members = geometry.get("geometries")
            members = members if isinstance(members, list) else []
            return sum(_count_positions(m, parameter, depth + 1) for m in members)
        return _count_positions(geometry.get("coordinates"), parameter, depth + 1)
    if isinstance(geometry, list):
        if geometry and not isinstance(geometry[0], list):
            return 1
        return sum(_count_positions(p, parameter, depth + 1) for p in geometry)
    return 0


def _position(value: Any, parameter: str) -> LonLat:
    if (
        not isinstance(value, list)
        or len(value) not in (2, 3)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidValue(f"{parameter}: a position must be [lon, lat] numbers, got {value!r}")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidValue(
            f"{parameter}: position {value!r} is outside lon [-180, 180], lat [-90, 90]"
        )
    return lon, lat


def _positions(value: Any, parameter: str, minimum: int) -> tuple[LonLat, ...]:
    points = tuple(_position(p, parameter) for p in _list(value))
    if len(points) < minimum:
        raise InvalidValue(f"{parameter}: needs at least {minimum} positions, got {len(points)}")
    return points


def _polygon(rings: Any, parameter: str) -> GeometryPart:
    return GeometryPart("polygon", tuple(_positions(ring, parameter, 4) for ring in _list(rings)))


_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single HTTP `bytes=` range of a `size`-byte file, or None for the
    whole file (no header, a form this does not read, or `bytes=-`). Raises InvalidValue when
    the range starts past the end (an HTTP 416)."""
    match = _BYTE_RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    first_text, last_text = match.groups()
    if first_text == "" and last_text == "":
        return None
    if first_text == "":
        first, last = max(0, size - int(last_text)), size - 1
    else:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or first > last:
        raise InvalidValue(f"Range {header}: the file has {size} bytes")
    return first, last
