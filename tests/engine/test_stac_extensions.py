"""What the reference STAC API offers, here too: the Query extension, collection search, a
health check, gzip, and a 400 naming any unknown search parameter or spatial operator."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from .seeding import Seeded


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {feature["id"] for feature in response.json()["features"]}


def test_query_extension_is_declared_and_filters(client: TestClient[Any], seeded: Seeded) -> None:
    conformance = client.get("/conformance").json()["conformsTo"]
    assert "https://api.stacspec.org/v1.0.0/item-search#query" in conformance
    every = _ids(client.post("/search", json={"limit": 1000}))
    row_one = _ids(client.post("/search", json={"limit": 1000, "query": {"grid:row": {"eq": 1}}}))
    assert row_one
    assert row_one < every
    assert all(item_id.split("_")[-2] == "1" for item_id in row_one)
    both = {"grid:row": {"eq": 1}, "grid:col": {"gte": 2, "lt": 4}}
    narrowed = _ids(client.post("/search", json={"limit": 1000, "query": both}))
    assert narrowed
    assert all(int(i.split("_")[-1]) in (2, 3) for i in narrowed)
    assert narrowed < row_one
    # AND-ed with a filter, and the same through GET.
    with_filter = client.post(
        "/search",
        json={
            "limit": 1000,
            "query": {"grid:row": {"eq": 1}},
            "filter": {"op": "=", "args": [{"property": "grid:col"}, 0]},
        },
    )
    assert all(i.endswith("_1_0") for i in _ids(with_filter))
    assert _ids(
        client.get("/search", params={"limit": 1000, "query": '{"grid:row":{"eq":1}}'})
    ) == (row_one)
    captions = _ids(
        client.post("/search", json={"limit": 1000, "query": {"caption": {"contains": "river"}}})
    )
    assert captions
    assert captions < every


def test_query_extension_errors_name_the_property_or_operator(client: TestClient[Any]) -> None:
    cases = {
        "query.grid:row.near: unknown operator": {"grid:row": {"near": 1}},
        "query.grid:row: expected an object of operators": {"grid:row": 1},
        "query.grid:row.in: expected a non-empty list": {"grid:row": {"in": 3}},
        "unknown queryable 'nope'": {"nope": {"eq": 1}},
    }
    for expected, query in cases.items():
        response = client.post("/search", json={"query": query})
        assert response.status_code == 400, query
        assert expected in response.json()["description"], response.json()


def test_unknown_search_body_parameters_are_refused(client: TestClient[Any]) -> None:
    response = client.post("/search", json={"limit": 2, "colections": ["x"], "sort": "id"})
    assert response.status_code == 400
    description = response.json()["description"]
    assert description.startswith("colections, sort: not a search parameter")
    assert "collections" in description


def test_unsupported_spatial_operators_are_named(client: TestClient[Any]) -> None:
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    response = client.post(
        "/search", json={"filter": {"op": "s_within", "args": [{"property": "geometry"}, polygon]}}
    )
    assert response.status_code == 400
    assert (
        "'s_within' is not supported; supported: s_intersects, s_disjoint"
        in (response.json()["description"])
    )


def test_collection_search_by_q_bbox_and_datetime(client: TestClient[Any], seeded: Seeded) -> None:
    def ids(**params: str) -> list[str]:
        response = client.get("/collections", params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["collections"]]

    assert ids() == seeded.collections
    assert ids(q="sentinel") == ["sentinel-2-l2a"]
    assert ids(q="nothing,landsat") == ["landsat-c2-l2"]
    assert ids(bbox="1.9,48.4,2.6,49.0") == ["sentinel-2-l2a"]
    assert ids(bbox="100,60,101,61") == []
    assert ids(datetime="2024-01-01T00:00:00Z/..") == ["sentinel-2-l2a"]
    assert ids(datetime="../2023-12-31T23:59:59Z") == ["landsat-c2-l2"]
    for params, named in (
        ({"bbox": "1,2,3"}, "bbox: expected 4 numbers"),
        ({"datetime": "yesterday"}, "datetime: 'yesterday'"),
        ({"qq": "x"}, "qq: not a parameter of /collections"),
    ):
        response = client.get("/collections", params=params)
        assert response.status_code == 400
        assert named in response.json()["description"]


def test_health_checks_the_database(client: TestClient[Any]) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_responses_are_gzipped_when_asked(client: TestClient[Any], seeded: Seeded) -> None:
    asked = client.get("/search", params={"limit": 50}, headers={"Accept-Encoding": "gzip"})
    assert asked.headers["content-encoding"] == "gzip"
    assert asked.json()["features"]  # the client decodes it
    plain = client.get("/search", params={"limit": 50}, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
