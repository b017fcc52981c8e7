from typing import Any

from litestar.testing import TestClient


def test_landing_search_and_ranked_search_answer(client: TestClient[Any]) -> None:
    assert client.get("/").json()["type"] == "Catalog"
    page = client.get("/search", params={"limit": 5}).json()
    assert len(page["features"]) == 5
    ranked = client.get("/search", params={"q": "boats in a harbour", "limit": 3})
    assert ranked.headers["X-Search-Strategy"].startswith("exact")
    assert "search:score" in ranked.json()["features"][0]["properties"]
