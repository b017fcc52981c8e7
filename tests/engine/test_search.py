"""Search mechanics against a seeded database: filters, paging, ranking, auth, docs."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
from litestar.testing import TestClient
from PIL import Image
from sqlalchemy import text

from geomelt import SAMPLE_DIR
from geomelt.db import create_db_engine

from .seeding import Seeded


def _pages(client: TestClient[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    features, url = [], None
    page = client.get("/search", params=params).json()
    while True:
        features += page["features"]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        if url is None:
            return features
        page = client.get(url).json()


def test_landing_conformance_and_docs(client: TestClient[Any]) -> None:
    landing = client.get("/").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "root", "conformance", "service-desc", "service-doc", "data", "search"} <= rels
    assert landing["conformsTo"] == client.get("/conformance").json()["conformsTo"]
    assert "https://geomelt.dev/stac-api/semantic-search/v1.0.0" in landing["conformsTo"]
    api = client.get("/api")
    assert api.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    paths = api.json()["paths"]
    assert {"/search", "/search/image", "/collections/{collection_id}/items"} <= set(paths)
    assert "small boats in a harbour" in api.text  # documented examples
    assert "Search items" in client.get("/api.html").text


def test_get_paging_visits_every_item_once_in_datetime_order(
    client: TestClient[Any], seeded: Seeded
) -> None:
    features = _pages(client, {"limit": 7})
    ids = [f["id"] for f in features]
    assert sorted(ids) == sorted(seeded.chips)
    times = [f["properties"]["datetime"] for f in features]
    assert times == sorted(times, reverse=True)


def test_post_paging_with_merge_and_sort(client: TestClient[Any], seeded: Seeded) -> None:
    body = {"limit": 5, "sortby": [{"field": "properties.valid_fraction", "direction": "asc"}]}
    page = client.post("/search", json=body).json()
    seen = []
    while True:
        seen += page["features"]
        link = next((lk for lk in page["links"] if lk["rel"] == "next"), None)
        if link is None:
            break
        assert link["method"] == "POST"
        assert link["merge"] is True
        page = client.post("/search", json={**body, **link["body"]}).json()
    values = [f["properties"]["valid_fraction"] for f in seen]
    assert len(seen) == len(seeded.chips)
    assert values == sorted(values)


def test_filters_bbox_intersects_datetime_and_cql2(client: TestClient[Any], seeded: Seeded) -> None:
    inside = client.get("/search", params={"bbox": "2.0,48.5,2.15,48.65", "limit": 100}).json()
    for feature in inside["features"]:
        west, south, east, north = feature["bbox"]
        assert west < 2.15
        assert east > 2.0
        assert south < 48.65
        assert north > 48.5
    assert inside["features"]
    antimeridian = client.get("/search", params={"bbox": "179.5,-17,-179.5,-16", "limit": 100})
    assert {f["properties"]["geomelt:source_item"] for f in antimeridian.json()["features"]} == {
        "LC08_199026_20220301"
    }
    point = client.post(
        "/search", json={"intersects": {"type": "Point", "coordinates": [2.05, 48.55]}}
    ).json()
    assert [f["id"] for f in point["features"]] == ["S2A_T31UDQ_20240501_0_0"]
    interval = client.get(
        "/search", params={"datetime": "2024-01-01T00:00:00Z/..", "limit": 100}
    ).json()
    assert {f["collection"] for f in interval["features"]} == {"sentinel-2-l2a"}
    cql_text = client.get(
        "/search", params={"filter": "\"eo:cloud_cover\" < 10 AND caption LIKE '%a%'"}
    ).json()
    cql_json = client.post(
        "/search",
        json={"filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]}, "limit": 100},
    ).json()
    assert {f["properties"]["geomelt:source_item"] for f in cql_json["features"]} == {
        "S2A_T31UDQ_20240501"
    }
    assert cql_text["features"]
    assert all(f["properties"]["eo:cloud_cover"] < 10 for f in cql_text["features"])


def test_item_thumbnail_and_fields(client: TestClient[Any]) -> None:
    item = client.get("/collections/sentinel-2-l2a/items/S2A_T31UDQ_20240501_0_0").json()
    thumbnail = client.get(item["assets"]["thumbnail"]["href"])
    assert thumbnail.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumbnail.content)).size == (8, 8)
    slim = client.get("/search", params={"fields": "-geometry", "limit": 1}).json()["features"]
    assert "geometry" not in slim[0]
    assert "caption" in slim[0]["properties"]


def test_similar_to_ranks_by_true_cosine_order(client: TestClient[Any], seeded: Seeded) -> None:
    anchor = "S2A_T31UDQ_20240501_1_1"
    response = client.get(
        "/search", params={"similar_to": anchor, "collections": "sentinel-2-l2a", "limit": 30}
    )
    body = response.json()
    assert response.headers["X-Search-Strategy"].startswith("exact")
    assert body["search:info"]["strategy"] == "exact"
    query = seeded.chips[anchor][1]
    expected = sorted(
        (i for i, chip in seeded.chips.items() if chip[0] == "sentinel-2-l2a" and i != anchor),
        key=lambda i: -float(np.dot(query, seeded.chips[i][1])),
    )
    got = [f["id"] for f in body["features"]]
    assert anchor not in got
    assert len(got) == len(expected)
    true_scores = [float(np.dot(query, seeded.chips[i][1])) for i in got]
    # halfvec storage rounds scores at ~1e-3; the order must follow the true cosine order.
    assert all(a >= b - 2e-3 for a, b in itertools.pairwise(true_scores))
    assert got[0] == expected[0]
    for feature in body["features"]:
        assert feature["properties"]["search:vector_score"] == np.float64(
            feature["properties"]["search:vector_score"]
        )
        assert (
            abs(
                feature["properties"]["search:vector_score"]
                - float(np.dot(query, seeded.chips[feature["id"]][1]))
            )
            < 5e-3
        )


def test_negative_examples_move_the_ranking(client: TestClient[Any], seeded: Seeded) -> None:
    params = {"similar_to": "S2A_T31UDQ_20240501_1_1", "limit": 5}
    plain = [f["id"] for f in client.get("/search", params=params).json()["features"]]
    away = client.get("/search", params={**params, "negative": plain[0]}).json()["features"]
    assert [f["id"] for f in away] != plain


def test_q_is_hybrid_filtered_scored_and_pages_stably(
    client: TestClient[Any], seeded: Seeded
) -> None:
    params = {"q": "boats harbour", "collections": "landsat-c2-l2", "limit": 5}
    first = client.get("/search", params=params).json()
    assert first["search:info"]["fusion"] == "rrf(k=60)"
    features = _pages(client, params)
    assert {f["collection"] for f in features} == {"landsat-c2-l2"}
    assert len({f["id"] for f in features}) == len(features) == 24
    scores = [f["properties"]["search:score"] for f in features]
    assert scores == sorted(scores, reverse=True)
    assert [f["properties"]["search:rank"] for f in features] == list(range(1, 25))
    matched = [f for f in features if "search:text_rank" in f["properties"]]
    assert matched
    assert all("harbour" in f["properties"]["caption"] for f in matched)
    # A keyword match ranks above the non-matching items with a similar vector rank.
    assert features[0]["properties"].get("search:text_rank") is not None


def test_image_upload_returns_similar_chips_and_pages(client: TestClient[Any]) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 30)).save(buffer, format="JPEG")
    response = client.post(
        "/search/image", files={"file": ("a.jpg", buffer.getvalue())}, data={"limit": "4"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["features"]) == 4
    assert body["search:info"]["image_ref"]
    next_href = next(link["href"] for link in body["links"] if link["rel"] == "next")
    second = client.get(next_href).json()["features"]
    assert len(second) == 4
    assert not {f["id"] for f in second} & {f["id"] for f in body["features"]}


def test_geotiff_upload_of_reflectance_data_returns_chips(client: TestClient[Any]) -> None:
    # A real Sentinel-2 surface-reflectance GeoTIFF (uint16): stretched to RGB and embedded.
    geotiff = SAMPLE_DIR / "s2_barbellino_20190723_boa_10m_tiny.tif"
    response = client.post(
        "/search/image", files={"file": ("s2.tif", geotiff.read_bytes())}, data={"limit": "3"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["features"]) == 3
    scores = [f["properties"]["search:score"] for f in body["features"]]
    assert scores == sorted(scores, reverse=True)


def test_api_keys_guard_writes_and_are_stored_hashed(
    client: TestClient[Any], database_url: str
) -> None:
    from geomelt.engine import issue_key

    engine = create_db_engine(database_url)
    writer = issue_key(engine, name="writer", scopes=["write"])
    admin = issue_key(engine, name="admin", scopes=["admin"])
    source = {"name": "s2", "stac_api_url": "http://127.0.0.1:1/", "collection": "c"}
    assert client.post("/sources", json=source).json()["code"] == "Unauthorized"
    bad = client.post("/sources", json=source, headers={"Authorization": "Bearer gmk_x_y"})
    assert bad.status_code == 401
    created = client.post("/sources", json=source, headers={"Authorization": f"Bearer {writer}"})
    assert created.status_code == 201, created.text
    source_id = created.json()["id"]
    denied = client.delete(f"/sources/{source_id}", headers={"Authorization": f"Bearer {writer}"})
    assert denied.status_code == 403
    assert client.delete(f"/sources/{source_id}", headers={"X-API-Key": admin}).status_code == 204
    reindexed = client.post("/admin/reindex", json={}, headers={"X-API-Key": admin}).json()
    assert reindexed["scenes"] == 4
    gone = client.delete(
        "/admin/collections/sentinel-2-l2a/items/S2A_T31UDQ_20240501_0_0",
        headers={"X-API-Key": admin},
    )
    assert gone.status_code == 204
    assert (
        client.get("/collections/sentinel-2-l2a/items/S2A_T31UDQ_20240501_0_0").status_code == 404
    )
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT secret_hash FROM api_keys")).scalars().all()
    engine.dispose()
    assert all(writer.split("_", 2)[2] not in h and len(h) == 64 for h in stored)
