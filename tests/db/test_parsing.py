"""db.parsing: the bbox, date-time and geometry parsing the engine, workers and CLI share."""

from __future__ import annotations

import datetime as dt

import pytest

from geomelt.db.parsing import (
    MAX_GEOMETRY_POSITIONS,
    GeometryTooLarge,
    InvalidValue,
    bbox_numbers,
    byte_range,
    geometry_positions,
    loose_instant,
    parse_bbox,
    parse_geometry,
    parse_instant,
    parse_interval,
)


def test_bbox_orders_checks_and_names_the_parameter() -> None:
    assert parse_bbox([170, -10, -170, 10]) == (170.0, -10.0, -170.0, 10.0)  # antimeridian
    assert parse_bbox([1, 2, 0, 3, 4, 100]) == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(InvalidValue, match=r"^--bbox \[0, 10, 1, 5\]: south > north"):
        parse_bbox([0, 10, 1, 5], "--bbox")
    with pytest.raises(InvalidValue, match="out of range"):
        parse_bbox([0, 0, 181, 1])
    with pytest.raises(InvalidValue, match="finite"):
        parse_bbox([0, 0, float("nan"), 1])
    with pytest.raises(InvalidValue, match="expected 4 numbers west,south,east,north, got 6"):
        parse_bbox([1, 2, 0, 3, 4, 100], allow_elevation=False)
    with pytest.raises(InvalidValue, match="elevation"):
        parse_bbox([1, 2, 5, 3, 4, 0])
    with pytest.raises(InvalidValue, match="expected 4 or 6 numbers"):
        parse_bbox([True, 0, 1, 1])
    assert bbox_numbers("1,2.5,3,4") == [1.0, 2.5, 3.0, 4.0]
    with pytest.raises(InvalidValue, match=r"^q: 'a,b' is not a comma-separated list of numbers"):
        bbox_numbers("a,b", "q")


def test_instants_and_intervals() -> None:
    assert parse_instant("2024-05-01T10:00:00.5+02:00") == dt.datetime(
        2024, 5, 1, 8, 0, 0, 500000, tzinfo=dt.UTC
    )
    with pytest.raises(InvalidValue, match=r"^start: '2024-05-01' is not an RFC 3339 date-time"):
        parse_instant("2024-05-01", "start")
    with pytest.raises(InvalidValue, match="not a valid date-time"):
        parse_instant("2024-02-30T00:00:00Z")
    instant = parse_instant("2024-05-01T00:00:00Z")
    assert parse_interval("2024-05-01T00:00:00Z") == (instant, instant)
    assert parse_interval("../2024-05-01T00:00:00Z") == (None, instant)
    assert parse_interval("2024-05-01T00:00:00Z/") == (instant, None)
    for bad, reason in (("../..", "open at both ends"), ("a/b/c", "more than one '/'")):
        with pytest.raises(InvalidValue, match=reason):
            parse_interval(bad)
    with pytest.raises(InvalidValue, match="ends before it starts"):
        parse_interval("2024-05-02T00:00:00Z/2024-05-01T00:00:00Z")


def test_loose_instants_of_foreign_items() -> None:
    assert loose_instant("2020-01-01") == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert loose_instant("2020-01-01T00:00:00Z") == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert loose_instant("yesterday") is None
    assert loose_instant(None) is None


def test_geometries_of_every_type() -> None:
    square = [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]
    collection = {
        "type": "GeometryCollection",
        "geometries": [
            {"type": "Point", "coordinates": [5, 5]},
            {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]},
            {"type": "MultiPolygon", "coordinates": [[square, square]]},
        ],
    }
    parts = parse_geometry(collection, "intersects")
    assert [part.kind for part in parts] == ["point", "line", "line", "polygon"]
    assert len(parts[3].rings) == 2  # the outer ring and a hole
    assert list(geometry_positions(collection))[:2] == [(5.0, 5.0), (0.0, 0.0)]


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        ({"type": "Circle", "coordinates": [0, 0]}, "not a GeoJSON geometry"),
        ({"type": "Point", "coordinates": []}, "needs non-empty 'coordinates'"),
        ({"type": "Point", "coordinates": [200, 0]}, "outside lon"),
        ({"type": "LineString", "coordinates": [[0, 0]]}, "at least 2 positions"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}, "at least 4 positions"),
        ({"type": "MultiPolygon", "coordinates": [5]}, "malformed MultiPolygon"),
        ({"type": "GeometryCollection", "geometries": []}, "non-empty 'geometries'"),
    ],
)
def test_bad_geometries_are_named(geometry: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidValue, match=f"^filter: .*{reason}"):
        parse_geometry(geometry, "filter")


def test_too_many_positions_is_its_own_error() -> None:
    ring = [[0.0, i / MAX_GEOMETRY_POSITIONS] for i in range(MAX_GEOMETRY_POSITIONS)]
    line = {"type": "LineString", "coordinates": [*ring, [1.0, 1.0]]}
    with pytest.raises(GeometryTooLarge, match="simplify it"):
        parse_geometry(line, "intersects")


def test_byte_range_reads_single_ranges_and_refuses_past_the_end() -> None:
    assert byte_range(None, 100) is None
    assert byte_range("bytes=-", 100) is None  # no bounds at all: the whole file
    assert byte_range("bytes=0-9", 100) == (0, 9)
    assert byte_range(" bytes=90- ", 100) == (90, 99)
    assert byte_range("bytes=-10", 100) == (90, 99)
    assert byte_range("bytes=50-500", 100) == (50, 99)
    with pytest.raises(InvalidValue, match="Range bytes=100-: the file has 100 bytes"):
        byte_range("bytes=100-", 100)
