"""Bad input: a STAC-style JSON error naming the parameter, never a 500."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from litestar.testing import TestClient
from PIL import Image

from geomelt import SAMPLE_DIR
from geomelt.engine import AppDeps, create_app

from .conftest import make_config


def _nested_not(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"op": "=", "args": [{"property": "grid:row"}, 1]}
    for _ in range(depth):
        node = {"op": "not", "args": [node]}
    return node


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
    # Nesting that overflowed the CQL2 parser's stack (the process died) or cost seconds and GB.
    ({"filter": "(" * 3000 + '"grid:row" = 1' + ")" * 3000}, 400, "filter: nested more than 32"),
    ({"filter": "NOT (" * 1200 + '"grid:row" = 1' + ")" * 1200}, 400, "filter: nested"),
    ({"filter": "NOT (" * 100 + '"grid:row" = 1' + ")" * 100}, 400, "filter: nested"),
    ({"filter": "NOT " * 5000 + "caption = 'a'"}, 400, "filter: more than 256 operators"),
    ({"filter": '"grid:row" = ' + "+".join(["1"] * 100)}, 400, "filter: nested"),
    ({"filter": '"grid:row" = ' + "-" * 5000 + "1"}, 400, "filter: more than 256 operators"),
    ({"filter": " AND ".join(['"grid:row" = 1'] * 200)}, 400, "filter: more than 256 operators"),
    ({"filter": "[" * 5000, "filter-lang": "cql2-json"}, 400, "filter: JSON nested"),
    ({"intersects": "[" * 5000 + "]" * 5000}, 400, "intersects: JSON nested"),
    # Types the database would have refused with a 500.
    ({"filter": "CASEI(\"grid:row\") = 'a'"}, 400, "CASEI needs a string"),
    ({"filter": "CASEI(datetime) = 'a'"}, 400, "CASEI needs a string"),
    ({"filter": 'caption = "grid:row"'}, 400, "cannot compare"),
    ({"filter": 'datetime > "eo:cloud_cover"'}, 400, "cannot compare"),
    ({"filter": "\"grid:row\" LIKE 'a%'"}, 400, "LIKE needs a string property"),
    ({"filter": "'a' = 1"}, 400, "needs a property"),
    ({"filter": "1 IN (1, 2)"}, 400, "IN needs a property"),
    # NUL characters, which PostgreSQL text cannot hold.
    ({"q": "boats\x00"}, 400, "q: contains a NUL"),
    ({"ids": "a\x00_1_2"}, 400, "ids: contains a NUL"),
    ({"collections": "sentinel\x00"}, 400, "collections: contains a NUL"),
    ({"similar_to": "S2A\x00_1_2"}, 400, "similar_to: contains a NUL"),
    ({"filter": "caption = 'a\x00'"}, 400, "filter: contains a NUL"),
    # Every phrase is one tsquery; 160 of them recursed past Python's limit in the SQL compiler.
    ({"q": ",".join(f"w{i}" for i in range(160))}, 400, "q: 160 comma-separated phrases"),
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
    ({"filter": " AND ".join(['"grid:row" = 1'] * 20_000)}, 413, "more than the 200000 allowed"),
    ({"filter": _nested_not(33)}, 400, "filter: nested more than 32"),
    (
        {"filter": {"op": "=", "args": [{"op": "casei", "args": [{"property": "grid:row"}]}, "a"]}},
        400,
        "CASEI needs a string",
    ),
    (
        {"filter": {"op": "=", "args": [{"property": "caption"}, {"property": "datetime"}]}},
        400,
        "cannot compare",
    ),
    ({"q": "boats\x00"}, 400, "q: contains a NUL"),
    ({"ids": ["ok", "a\x00"]}, 400, "ids[1]: contains a NUL"),
    ({"filter": {"op": "=", "args": [{"property": "caption"}, "\x00"]}}, 400, "filter.args[1]"),
    ({"collections": ["x"], "\x00": 1}, 400, "contains a NUL"),
    ({"q": [f"w{i}" for i in range(33)]}, 400, "q: 33 comma-separated phrases"),
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


GEOTIFF = SAMPLE_DIR / "s2_barbellino_20190723_boa_10m_tiny.tif"


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


def test_raw_json_bodies(client: TestClient[Any]) -> None:
    """Bodies the JSON encoder of a test would not write: a number beyond float64, deep nesting
    before the handler decodes (msgspec raised RecursionError), an escaped NUL."""
    headers = {"content-type": "application/json"}
    for body, status, needle in (
        (b'{"limit": 1e999}', 400, "limit: number out of range"),
        (b'{"q": "boats", "bbox": [0, 0, 1, -1e999]}', 400, "bbox[3]: number out of range"),
        (b'{"limit": ' + b"9" * 30 + b"}", 400, "limit: 9999"),
        (b'{"q": ' + b"[" * 1000 + b"]" * 1000 + b"}", 400, "body: nested more than 80"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "body: nested"),
        (b'{"q": "a\\\\u0000"}', 200, ""),  # an escaped backslash, then text: no NUL
        (b'{"q": "a\\\\\\u0000"}', 400, "q: contains a NUL"),
        (
            b'{"filter": ' + b'{"op": "not", "args": [' * 1000 + b"true" + b"]}" * 1000 + b"}",
            400,
            "body: nested more than 80",
        ),
    ):
        response = client.post("/search", content=body, headers=headers)
        if status == 200:
            assert response.status_code == 200, response.text
        else:
            _assert_error(response, status, needle)


def test_path_parameters_with_nul(client: TestClient[Any]) -> None:
    _assert_error(client.get("/collections/a%00b"), 400, "collection_id: contains a NUL")
    _assert_error(client.get("/collections/a%00b/items"), 400, "collection_id")
    _assert_error(
        client.get("/collections/sentinel-2-l2a/items/x%00y"), 400, "item_id: contains a NUL"
    )
    _assert_error(client.get("/collections/sentinel-2-l2a/items/x%00y/thumbnail"), 400, "item_id")


def test_many_phrases_below_the_limit_are_searched(client: TestClient[Any]) -> None:
    """32 phrases compile to a balanced OR of tsqueries and find the seeded captions."""
    phrases = ["harbour", "river", *(f"nothing{i}" for i in range(30))]
    response = client.get("/search", params={"q": ",".join(phrases), "limit": 100})
    assert response.status_code == 200, response.text
    ranked = [f for f in response.json()["features"] if f["properties"].get("search:text_rank")]
    assert ranked
    assert all(
        "harbour" in f["properties"]["caption"] or "river" in f["properties"]["caption"]
        for f in ranked
    )


def test_sources_paths_and_bodies_out_of_range(
    database_url: str, seeded: Any, tiny_model: Any
) -> None:
    from geomelt.db import create_db_engine
    from geomelt.engine import issue_key

    app = create_app(AppDeps(config=make_config(database_url), load_model=lambda: tiny_model))
    engine = create_db_engine(database_url)
    try:
        writer = {"Authorization": f"Bearer {issue_key(engine, name='w', scopes=['admin'])}"}
    finally:
        engine.dispose()
    source = {"name": "s", "stac_api_url": "https://example.test/stac", "collection": "c"}
    with TestClient(app) as client:
        for method in ("GET", "PATCH", "DELETE"):
            body = {"name": "x"} if method == "PATCH" else None
            response = client.request(method, "/sources/380027397751", json=body, headers=writer)
            _assert_error(response, 400, "source_id: 380027397751 is out of range")
        huge = client.post("/sources", json={**source, "overlap_px": 4398046511103}, headers=writer)
        assert huge.status_code == 400, huge.text
        assert set(huge.json()) == {"code", "description"}
        nul = client.post("/sources", json={**source, "name": "a\x00"}, headers=writer)
        _assert_error(nul, 400, "name: contains a NUL")
        created = client.post("/sources", json=source, headers=writer)
        assert created.status_code == 201, created.text
        source_id = created.json()["id"]
        patched = client.patch(f"/sources/{source_id}", json={"collection": "\x00"}, headers=writer)
        _assert_error(patched, 400, "collection: contains a NUL")
        assert client.get(f"/sources/{source_id}", headers=writer).json()["collection"] == "c"


def test_image_search_honours_the_query_string(client: TestClient[Any]) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 120, 200)).save(buffer, format="PNG")
    files = {"file": ("x.png", buffer.getvalue())}
    response = client.post("/search/image?limit=2", files=files)
    assert response.status_code == 200, response.text
    assert response.json()["numberReturned"] == 2
    both = client.post("/search/image?limit=2", files=files, data={"limit": "3"})
    _assert_error(both, 400, "limit: given both in the query string and as a form field")


def test_server_survives_a_filter_that_killed_it(live_server: str) -> None:
    """The request that overflowed the parser's stack gets a 400 and the server keeps serving."""
    import httpx

    deep = "(" * 3000 + '"grid:row" = 1' + ")" * 3000
    with httpx.Client(base_url=live_server, timeout=30) as http:
        _assert_error(http.get("/search", params={"filter": deep}), 400, "filter")
        _assert_error(
            http.post("/search", json={"filter": "NOT (" * 1200 + "caption = 'a'" + ")" * 1200}),
            400,
            "filter",
        )
        assert http.get("/search", params={"limit": 1}).status_code == 200
