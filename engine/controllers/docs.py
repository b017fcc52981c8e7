"""OpenAPI descriptions and examples of the search parameters (documentation only; the
values are parsed and validated by engine.params so that errors name the parameter)."""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import Example
from litestar.params import Parameter

__all__ = ["SEARCH_BODY_EXAMPLES", "SEARCH_DESCRIPTION", "query"]

SEARCH_DESCRIPTION = """Item Search over chips (STAC API Item Search with filter, sort, fields).

Ranking (GeoMELT semantic-search extension):
* `q`: natural-language description; relevance = reciprocal-rank fusion (k=60) of the text-to-image
  cosine similarity and the keyword match of captions. Every filtered chip is eligible.
* `similar_to` (item ids, max 32) with optional `negative` (Rocchio, beta 0.5): example-based
  search.
* Ranked results default to `search:score` desc; an explicit `sortby` re-orders the ranked set (the
  ranking still selects the candidates). Ranked searches return at most the fused top 1000 of
  each ranking (the paging depth cap). Items carry `search:score`, `search:vector_score`,
  `search:text_rank` and `search:rank`; the response carries `search:info` (strategy exact|hnsw)
  and the `X-Search-Strategy` header.

Paging: follow the `next` link (a signed keyset token; never OFFSET).
"""

_DESCRIPTIONS: dict[str, tuple[str, Any]] = {
    "collections": (
        "Comma-separated collection ids; unknown ids give no results.",
        "sentinel-2-l2a",
    ),
    "ids": ("Comma-separated chip item ids.", "S2A_T31UDQ_20240501_3_4"),
    "bbox": (
        "west,south,east,north (or 6 numbers with heights); west > east crosses 180.",
        "2.2,48.8,2.5,48.9",
    ),
    "intersects": (
        "URL-encoded GeoJSON geometry (any of the 7 types); not with bbox.",
        '{"type":"Point","coordinates":[2.35,48.85]}',
    ),
    "datetime": (
        "RFC 3339 instant or interval (a/b, ../b, a/.., /b, a/).",
        "2024-05-01T00:00:00Z/2024-06-01T00:00:00Z",
    ),
    "limit": ("Page size, 1..1000 (larger values are clamped); default 10.", "10"),
    "sortby": ("Comma list of fields with +/- prefix.", "-properties.datetime,+id"),
    "fields": ("Fields extension: include, -exclude.", "id,-geometry,properties.caption"),
    "filter": (
        "CQL2 filter (cql2-text by default).",
        "\"eo:cloud_cover\" < 20 AND caption LIKE '%river%'",
    ),
    "filter-lang": ("cql2-text (default for GET) or cql2-json.", "cql2-text"),
    "filter-crs": (
        "Only http://www.opengis.net/def/crs/OGC/1.3/CRS84.",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    ),
    "q": ("Natural-language ranking, 1-1000 characters.", "small boats in a harbour"),
    "similar_to": ("Rank by similarity to these item ids (max 32).", "S2A_T31UDQ_20240501_3_4"),
    "negative": ("Item ids to move away from (needs q or similar_to).", "S2A_T31UDQ_20240501_3_5"),
    "image_ref": ("Reference of an uploaded image (from POST /search/image).", "9f2c..."),
    "token": ("Page token from a next link.", None),
}


def query(name: str) -> Any:
    description, example = _DESCRIPTIONS[name]
    examples = [Example(summary=name, value=example)] if example is not None else None
    return Parameter(query=name, required=False, description=description, examples=examples)


SEARCH_BODY_EXAMPLES = [
    Example(
        summary="Filtered natural-language search",
        value={
            "collections": ["sentinel-2-l2a"],
            "bbox": [2.2, 48.8, 2.5, 48.9],
            "datetime": "2024-05-01T00:00:00Z/..",
            "q": "small boats in a harbour",
            "filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]},
            "limit": 10,
        },
    ),
    Example(
        summary="Example-based search",
        value={"similar_to": ["S2A_T31UDQ_20240501_3_4"], "negative": ["S2A_T31UDQ_20240501_3_5"]},
    ),
    Example(
        summary="Sort and fields",
        value={
            "sortby": [{"field": "properties.datetime", "direction": "desc"}],
            "fields": {"include": ["properties.caption"], "exclude": ["geometry"]},
        },
    ),
]
