"""The OpenAPI document describes the responses the API really sends (issue 19 item 15)."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _document(client: TestClient[Any]) -> dict[str, Any]:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_every_error_is_the_code_description_body(client: TestClient[Any]) -> None:
    document = _document(client)
    assert document["components"]["schemas"]["Error"]["required"] == ["code", "description"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            errors = {s: r for s, r in responses.items() if s[0] in "45"}
            assert {"400", "500", "503"} <= set(errors), (method, path)
            for response in errors.values():
                assert response["content"] == {"application/json": {"schema": ERROR_REF}}
            if "{" in path:
                assert "404" in errors, (method, path)
            if path.startswith(("/sources", "/admin")):
                assert {"401", "403"} <= set(errors), (method, path)
                assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "Retry-After" in document["paths"]["/search"]["get"]["responses"]["503"]["headers"]


def test_media_types_that_are_not_json(client: TestClient[Any]) -> None:
    paths = _document(client)["paths"]
    queryables = paths["/collections/{collection_id}/queryables"]["get"]["responses"]["200"]
    assert list(queryables["content"]) == ["application/schema+json"]
    assert list(paths["/queryables"]["get"]["responses"]["200"]["content"]) == [
        "application/schema+json"
    ]
    thumbnail = paths["/collections/{collection_id}/items/{item_id}/thumbnail"]["get"]
    assert set(thumbnail["responses"]["200"]["content"]) == {
        "image/png",
        "image/jpeg",
        "image/webp",
    }
    served = client.get("/collections/sentinel-2-l2a/items/S2A_T31UDQ_20240501_0_0/thumbnail")
    assert served.headers["content-type"] in thumbnail["responses"]["200"]["content"]
    assert client.get("/queryables").headers["content-type"].startswith("application/schema+json")


def test_limits_are_documented(client: TestClient[Any]) -> None:
    search = _document(client)["paths"]["/search"]["get"]
    text = search["description"] + str([p["description"] for p in search["parameters"]])
    for limit in ("200000 bytes", "32 levels", "256 operators", "32 comma-separated", "80 levels"):
        assert limit in text


def test_get_examples_go_together(client: TestClient[Any]) -> None:
    """The examples are one request (bbox with intersects was refused): it is answered 200."""
    search = _document(client)["paths"]["/search"]["get"]
    params = {
        p["name"]: next(iter(p["examples"].values()))["value"]
        for p in search["parameters"]
        if p.get("examples")
    }
    assert "intersects" not in params
    response = client.get("/search", params=params)
    assert response.status_code == 200, response.text


def test_options_lists_every_method_of_the_path(client: TestClient[Any]) -> None:
    """Litestar's own answer listed the methods of the first registered route only."""
    assert client.options("/search").headers["allow"] == "GET, OPTIONS, POST"
    assert client.options("/collections/x/items").headers["allow"] == "GET, OPTIONS"


def test_get_parameters_are_the_ones_parse_get_reads(client: TestClient[Any]) -> None:
    """One table (engine.params.GET_PARAMETERS) feeds the parser and the document."""
    from geomelt.engine.params import GET_PARAMETERS

    paths = _document(client)["paths"]

    def names(path: str) -> list[str]:
        return [p["name"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"]

    assert names("/search") == list(GET_PARAMETERS)
    assert names("/collections/{collection_id}/items") == [
        name for name in GET_PARAMETERS if name != "collections"
    ]
    # Every documented parameter is read: a bad value of each is refused, naming it.
    bad = {"bbox": "1,2", "intersects": "{", "datetime": "yesterday", "limit": "0", "q": " "}
    for name, value in bad.items():
        response = client.get("/search", params={name: value})
        assert response.status_code == 400, (name, response.text)
        assert response.json()["description"].startswith(name), response.text
