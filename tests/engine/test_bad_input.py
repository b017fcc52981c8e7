"""Bad input: a STAC-style JSON error naming the parameter, never a 500."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from geomelt.engine import AppDeps, create_app
from litestar.testing import TestClient
from PIL import Image

from .conftest import make_config

HUGE_RING = [[0.0 + i * 1e-5, 0.0] for i in range(20_000)] + [[0.0, 1.0], [0.0, 0.0]]

BAD_GET = [
    ({"bbox": "0,10,1,5"}, 400, "bbox"),
    ({"bbox": "0,0,200,1"}, 400, "bbox"),
    ({"bbox": "0,0,1"}, 400, "bbox"),
    ({"bbox": "a,b,c,d"}, 400, "bbox"),
    ({"intersects": "{not json"}, 400, "intersects"),
    ({"intersects": '{"type": "Circle", "coordinates": [0, 0]}'}, 400, "intersects"),
    ({"intersects": '{"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}'}, 400, "intersects"),
    ({"bbox": "0,0,1,1", "intersects": '{"type":"Point","coordinates":[0,0]}'}, 400, "bbox"),
    ({"datetime": "2024-13-45T00:00:00Z"}, 400, "datetime"),
    ({"datetime": "yesterday"}, 400, "datetime"),
    ({"datetime": "2024-05-01T00:00:00Z/2024-04-01T00:00:00Z"}, 400, "datetime"),
    ({"filter": "id = "}, 400, "filter"),
    ({"filter": "foo = 1"}, 400, "unknown queryable"),
    ({"filter": "caption = 'a'", "filter-lang": "cql3"}, 400, "filter-lang"),
    ({"filter-crs": "EPSG:3857"}, 400, "filter-crs"),
    ({"limit": "0"}, 400, "limit"),
    ({"limit": "-1"}, 400, "limit"),
    ({"limit": "ten"}, 400, "limit"),
    ({"sortby": "-properties.nope"}, 400, "sortby"),
    ({"token": "not-a-token"}, 400, "token"),
    ({"q": ""}, 400, "q"),
    ({"q": "   "}, 400, "q"),
    ({"q": "x" * 10_000}, 400, "q"),
    ({"negative": "S2A_T31UDQ_20240501_0_0"}, 400, "negative"),
    ({"similar_to": "nope_1_2"}, 400, "similar_to"),
]


def _assert_error(response: Any, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "description"}
    assert needle in body["description"]


@pytest.mark.parametrize(("params", "status", "needle"), BAD_GET)
def test_bad_get_parameters(
    client: TestClient[Any], params: dict[str, str], status: int, needle: str
) -> None:
    _assert_error(client.get("/search", params=params), status, needle)


BAD_POST = [
    ({"bbox": [0, 0, 1]}, 400, "bbox"),
    ({"bbox": "0,0,1,1"}, 400, "bbox"),
    ({"intersects": {"type": "Polygon", "coordinates": [HUGE_RING]}}, 413, "intersects"),
    ({"intersects": "not geojson"}, 400, "intersects"),
    ({"filter": {"op": "zzz", "args": []}}, 400, "filter"),
    ({"filter": {"op": "=", "args": [{"property": "secret"}, 1]}}, 400, "unknown queryable"),
    ({"filter": "caption = 'a'", "filter-lang": "cql2-json"}, 400, "filter"),
    (
        {"filter": {"op": "=", "args": [{"property": "id"}, "a"]}, "filter-lang": "cql2-text"},
        400,
        "filter",
    ),
    ({"limit": 0}, 400, "limit"),
    ({"q": ["", " "]}, 400, "q"),
    ({"q": 5}, 400, "q"),
    ({"sortby": [{"field": "id", "direction": "sideways"}]}, 400, "sortby"),
    ({"fields": None}, 400, "fields"),
    ({"similar_to": ["x"] * 33}, 400, "similar_to"),
]


@pytest.mark.parametrize(("body", "status", "needle"), BAD_POST)
def test_bad_post_bodies(
    client: TestClient[Any], body: dict[str, Any], status: int, needle: str
) -> None:
    _assert_error(client.post("/search", json=body), status, needle)


def test_limit_above_maximum_is_clamped(client: TestClient[Any]) -> None:
    response = client.get("/search", params={"limit": "1000000"})
    assert response.status_code == 200
    assert response.json()["numberReturned"] == 48  # all seeded chips, not an error


def test_post_search_needs_json(client: TestClient[Any]) -> None:
    response = client.post("/search", content=b"limit=1", headers={"content-type": "text/plain"})
    assert response.status_code in (400, 415)
    assert response.json()["code"] in ("UnsupportedMediaType", "BadRequest")


def test_unknown_collection_and_item_are_404(client: TestClient[Any]) -> None:
    for path in (
        "/collections/nope",
        "/collections/nope/items",
        "/collections/nope/queryables",
        "/collections/sentinel-2-l2a/items/S2A_T31UDQ_20240501_9_9",
        "/collections/sentinel-2-l2a/items/no-such-item",
    ):
        _assert_error(client.get(path), 404, "nope" if "nope" in path else "item")
    assert client.get("/search", params={"collections": "nope"}).json()["features"] == []


def test_wrong_method_is_405_and_unknown_path_404(client: TestClient[Any]) -> None:
    assert client.delete("/search").json()["code"] == "MethodNotAllowed"
    assert client.get("/no/such/path").json()["code"] == "NotFound"


def test_tampered_and_replayed_tokens_are_refused(client: TestClient[Any]) -> None:
    first = client.get("/search", params={"limit": 2, "collections": "sentinel-2-l2a"}).json()
    token = next(link for link in first["links"] if link["rel"] == "next")["href"].split("token=")[
        1
    ]
    ok = client.get("/search", params={"limit": 2, "collections": "sentinel-2-l2a", "token": token})
    assert ok.status_code == 200
    replayed = client.get(
        "/search", params={"limit": 2, "collections": "landsat-c2-l2", "token": token}
    )
    _assert_error(replayed, 400, "different query")
    body, signature = token.split(".")
    tampered = client.get(
        "/search",
        params={
            "limit": 2,
            "collections": "sentinel-2-l2a",
            "token": body[:-2] + "AA." + signature,
        },
    )
    _assert_error(tampered, 400, "token")


def test_expired_tokens_are_refused(database_url: str, seeded: Any, tiny_model: Any) -> None:
    config = make_config(database_url, token_ttl_s=-1)
    with TestClient(create_app(AppDeps(config=config, load_model=lambda: tiny_model))) as client:
        first = client.post("/search", json={"limit": 1}).json()
        token = next(link for link in first["links"] if link["rel"] == "next")["body"]["token"]
        _assert_error(client.post("/search", json={"limit": 1, "token": token}), 400, "expired")


GEOTIFF = (
    Path(__file__).resolve().parents[2].parent
    / "shared/data/geo/s2_barbellino_20190723_boa_10m_tiny.tif"
)


def _upload(client: TestClient[Any], content: bytes, name: str = "x.png") -> Any:
    return client.post("/search/image", files={"file": (name, content)}, data={"limit": "3"})


def test_uploads_that_are_not_images_or_too_large(
    database_url: str, seeded: Any, tiny_model: Any
) -> None:
    config = make_config(database_url, max_upload_bytes=20_000)
    with TestClient(create_app(AppDeps(config=config, load_model=lambda: tiny_model))) as client:
        _assert_error(_upload(client, b"hello, not an image"), 415, "file")
        _assert_error(_upload(client, b"II*\x00" + b"\x00" * 100, "x.tif"), 415, "GeoTIFF")
        # A real GeoTIFF cut short.
        truncated = GEOTIFF.read_bytes()[:4000]
        _assert_error(_upload(client, truncated, "cut.tif"), 415, "GeoTIFF")
        _assert_error(_upload(client, b"\x89PNG" + b"\x00" * 30_000), 413, "file")
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buffer, format="PNG")
    config_pixels = make_config(database_url, max_image_pixels=1000)
    app = create_app(AppDeps(config=config_pixels, load_model=lambda: tiny_model))
    with TestClient(app) as small:
        _assert_error(_upload(small, buffer.getvalue()), 413, "pixels")


INJECTIONS = ["'; DROP TABLE chips; --", "x' OR '1'='1", "1); DELETE FROM scenes; --"]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_sql_injection_strings_are_inert(client: TestClient[Any], attack: str) -> None:
    quoted = attack.replace("'", "''")
    for params in (
        {"ids": attack},
        {"collections": attack},
        {"q": attack},
        {"filter": f"caption = '{quoted}'"},
        {"filter": f'"{attack}" = 1'},
        {"sortby": attack},
        {"fields": attack},
        {"similar_to": attack},
        {"datetime": attack},
        {"token": attack},
        {"bbox": attack},
        {"intersects": json.dumps({"type": attack})},
    ):
        response = client.get("/search", params=params)
        assert response.status_code in (200, 400), (params, response.text)
        if response.status_code == 200 and ("ids" in params or "collections" in params):
            assert response.json()["features"] == [], params
    for path in (f"/collections/{attack}", f"/collections/sentinel-2-l2a/items/{attack}"):
        assert client.get(path).status_code == 404
    assert client.post("/search", json={"ids": [attack], "q": attack}).status_code == 200
    assert client.get("/search", params={"limit": 1000}).json()["numberReturned"] == 48
