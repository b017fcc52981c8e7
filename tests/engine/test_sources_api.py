"""POST/PATCH /sources go through the same checks as the command line; admin key revocation."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from geomelt.db import create_db_engine
from geomelt.engine import AppDeps, create_app, issue_key

from .conftest import make_config

PUBLIC = {"name": "s2", "stac_api_url": "https://93.184.215.14/v1", "collection": "c"}


@pytest.fixture
def served(database_url: str, tiny_model: Any) -> Any:
    engine = create_db_engine(database_url)
    try:
        keys = {
            scope: {"Authorization": f"Bearer {issue_key(engine, name=scope, scopes=[scope])}"}
            for scope in ("write", "admin")
        }
    finally:
        engine.dispose()
    # As `geomelt serve` runs by default: sources may not point at private addresses.
    config = make_config(database_url, allow_private_sources=False)
    with TestClient(create_app(AppDeps(config=config, load_model=lambda: tiny_model))) as client:
        yield client, keys


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stac_api_url": "file:///etc/passwd"}, "stac_api_url 'file:///etc/passwd'"),
        ({"stac_api_url": "http://169.254.169.254/latest/"}, "169.254.169.254"),
        ({"stac_api_url": "http://127.0.0.1:8000/"}, "127.0.0.1"),
        ({"stac_api_url": "x"}, "stac_api_url 'x'"),
        ({"name": ""}, "source name ''"),
        ({"resolution_m": -1}, "resolution_m -1"),
        ({"resolution_m": 0}, "resolution_m 0"),
        ({"chip_size_px": 2_000_000_000}, "chip_size_px 2000000000"),
        ({"search": {"collections": ["other"]}}, "search keys ['collections']"),
    ],
)
def test_bad_sources_are_400_naming_the_field(
    served: Any, change: dict[str, Any], field: str
) -> None:
    client, keys = served
    response = client.post("/sources", json={**PUBLIC, **change}, headers=keys["write"])
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "InvalidParameterValue"
    assert field in response.json()["description"]
    assert client.get("/sources", headers=keys["write"]).json() == []


def test_patch_is_checked_like_post_and_duplicates_conflict(served: Any) -> None:
    client, keys = served
    created = client.post("/sources", json=PUBLIC, headers=keys["write"])
    assert created.status_code == 201, created.text
    source = f"/sources/{created.json()['id']}"
    for body, field in (
        ({"stac_api_url": "http://169.254.169.254/latest/"}, "169.254.169.254"),
        ({"name": ""}, "source name"),
        ({"overlap_px": 224}, "smaller than chip_size_px 224"),
        ({"chip_size_px": 2_000_000_000}, "chip_size_px"),
    ):
        response = client.patch(source, json=body, headers=keys["write"])
        assert response.status_code == 400, response.text
        assert field in response.json()["description"]
    assert (
        client.get(source, headers=keys["write"]).json()["stac_api_url"] == (PUBLIC["stac_api_url"])
    )
    changed = client.patch(source, json={"chip_size_px": 512}, headers=keys["write"])
    assert changed.json()["chip_size_px"] == 512
    duplicate = client.post("/sources", json=PUBLIC, headers=keys["write"])
    assert duplicate.status_code == 409
    assert "exists already" in duplicate.json()["description"]


def test_admin_lists_and_revokes_keys(served: Any) -> None:
    client, keys = served
    assert client.get("/admin/keys", headers=keys["write"]).status_code == 403
    assert client.delete("/admin/keys/write", headers=keys["write"]).status_code == 403
    listed = client.get("/admin/keys", headers=keys["admin"]).json()
    assert {key["name"] for key in listed} == {"write", "admin"}
    assert all("secret_hash" not in key for key in listed)

    assert client.delete("/admin/keys/write", headers=keys["admin"]).status_code == 204
    refused = client.get("/sources", headers=keys["write"])
    assert refused.status_code == 401
    assert "revoked" in refused.json()["description"]
    again = client.delete("/admin/keys/write", headers=keys["admin"])
    assert again.status_code == 404
    states = {
        k["name"]: k["revoked_at"] for k in client.get("/admin/keys", headers=keys["admin"]).json()
    }
    assert states["write"] is not None
    assert states["admin"] is None
