"""The OpenAPI document's descriptions, examples, parameters and responses.

The GET search operations list the query parameters of engine.params.GET_PARAMETERS, the table
parse_get reads, so the document cannot drift from what the handlers accept."""

from __future__ import annotations

from typing import Any

from litestar.enums import ParamType
from litestar.openapi.spec import (
    Example,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.params import Parameter

from ..limits import MAX_FILTER_BYTES, MAX_FILTER_DEPTH, MAX_FILTER_OPERATORS, MAX_JSON_DEPTH
from ..params import GET_PARAMETERS, MAX_Q_PHRASES

__all__ = ["SEARCH_BODY_EXAMPLES", "SEARCH_DESCRIPTION", "document_responses", "query"]

SEARCH_DESCRIPTION = f"""Item Search over chips (STAC API Item Search with filter, sort, fields).

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

Limits, checked before anything is parsed (400 naming the parameter; 413 for sizes):
`filter` at most {MAX_FILTER_BYTES} bytes, {MAX_FILTER_DEPTH} levels of parentheses (cql2-text)
or of nested operators (cql2-json) and {MAX_FILTER_OPERATORS} operators; `q` at most
{MAX_Q_PHRASES} comma-separated phrases; JSON bodies and JSON parameters nested at most
{MAX_JSON_DEPTH} levels; no NUL characters in any string.
"""

_DESCRIPTIONS: dict[str, tuple[str, Any]] = {
    "collections": (
        "Comma-separated collection ids; unknown ids give no results.",
        "sentinel-2-l2a",
    ),
    "ids": ("Comma-separated chip item ids.", "S2A_T31UDQ_20240501_1_2"),
    "bbox": (
        "west,south,east,north (or 6 numbers with heights); west > east crosses 180.",
        "2.2,48.8,2.5,48.9",
    ),
    # No example: the examples are sent together, and intersects does not go with bbox.
    "intersects": (
        "URL-encoded GeoJSON geometry (any of the 7 types, at most 10000 positions and 200 kB), "
        'e.g. `{"type":"Point","coordinates":[2.35,48.85]}`; not with bbox.',
        None,
    ),
    "datetime": (
        "RFC 3339 instant or interval (a/b, ../b, a/.., /b, a/).",
        "2024-05-01T00:00:00Z/2024-06-01T00:00:00Z",
    ),
    "limit": ("Page size, 1..1000 (larger values are clamped); default 10.", "10"),
    "sortby": ("Comma list of fields with +/- prefix.", "-properties.datetime,+id"),
    "fields": ("Fields extension: include, -exclude.", "id,-geometry,properties.caption"),
    "filter": (
        f"CQL2 filter (cql2-text by default). At most {MAX_FILTER_BYTES} bytes, "
        f"{MAX_FILTER_DEPTH} levels of parentheses (cql2-text) or nested operators (cql2-json) "
        f"and {MAX_FILTER_OPERATORS} operators; JSON nested at most {MAX_JSON_DEPTH} levels.",
        "\"eo:cloud_cover\" < 20 AND caption LIKE '%river%'",
    ),
    "filter-lang": ("cql2-text (default for GET) or cql2-json.", "cql2-text"),
    "query": (
        "Query extension: URL-encoded JSON object, property -> {operator: value} (eq, neq, lt, "
        "lte, gt, gte, startsWith, endsWith, contains, in); AND-ed with filter.",
        None,
    ),
    "filter-crs": (
        "Only http://www.opengis.net/def/crs/OGC/1.3/CRS84.",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    ),
    "q": (
        "Natural-language ranking, 1-1000 characters; commas separate at most "
        f"{MAX_Q_PHRASES} keyword phrases (OR-ed).",
        "small boats in a harbour",
    ),
    "similar_to": ("Rank by similarity to these item ids (max 32).", "S2A_T31UDQ_20240501_1_2"),
    "negative": ("Item ids to move away from (needs q or similar_to).", "S2A_T31UDQ_20240501_1_3"),
    "image_ref": ("Reference of an uploaded image (from POST /search/image).", None),
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
        value={"similar_to": ["S2A_T31UDQ_20240501_1_2"], "negative": ["S2A_T31UDQ_20240501_1_3"]},
    ),
    Example(
        summary="Sort and fields",
        value={
            "sortby": [{"field": "properties.datetime", "direction": "desc"}],
            "fields": {"include": ["properties.caption"], "exclude": ["geometry"]},
        },
    ),
]


# The one error body the API sends (engine.errors), for every 4xx and 5xx.
ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["code", "description"],
    properties={
        "code": Schema(type=OpenAPIType.STRING, description="e.g. InvalidParameterValue"),
        "description": Schema(
            type=OpenAPIType.STRING,
            description="What is wrong, naming the parameter, and how to fix it.",
        ),
    },
)
_ERROR_DESCRIPTIONS = {
    400: "Bad input; the description names the parameter.",
    401: "No valid API key; send `Authorization: Bearer gmk_...`.",
    403: "The API key lacks the scope this operation needs.",
    404: "The collection, item, source or file does not exist.",
    409: "Conflicts with an existing row (e.g. a duplicate source name).",
    413: "The body, upload, geometry or filter is larger than allowed.",
    415: "The body is not of a media type this operation takes.",
    416: "The Range asks for bytes beyond the end of the file.",
    500: "Unexpected server error; the description carries a request id that is logged.",
    503: "The database or the model is not available; retry after `Retry-After` seconds.",
}
_BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
_SCHEMA_JSON = {"application/schema+json": Schema(type=OpenAPIType.OBJECT)}
_TIFF = {"image/tiff; application=geotiff": _BINARY}
# Operations whose successful responses are not JSON: (path, method) -> {status: media types}.
_MEDIA_TYPES: dict[tuple[str, str], dict[str, dict[str, Schema]]] = {
    ("/queryables", "get"): {"200": _SCHEMA_JSON},
    ("/collections/{collection_id}/queryables", "get"): {"200": _SCHEMA_JSON},
    ("/collections/{collection_id}/items/{item_id}/thumbnail", "get"): {
        "200": {media: _BINARY for media in ("image/png", "image/jpeg", "image/webp")}
    },
    ("/files/{collection_id}/{name}", "get"): {"200": _TIFF, "206": _TIFF},
}
_EXTRA_ERRORS = {("/files/{collection_id}/{name}", "get"): (416,)}
# Operations whose query parameters are parse_get's (the handlers read the query string whole).
_SEARCH_QUERIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("/search", "get"): GET_PARAMETERS,
    # The path names the collection.
    ("/collections/{collection_id}/items", "get"): tuple(
        name for name in GET_PARAMETERS if name != "collections"
    ),
}
_METHODS = ("get", "put", "post", "delete", "patch")


def document_responses(openapi: OpenAPI, *, reads_require_key: bool) -> None:
    """Make the generated OpenAPI document tell the truth about responses (in place), and
    list the query parameters of the GET searches from engine.params.GET_PARAMETERS.

    Litestar documents its own error body (`status_code`, `detail`) and only the statuses it
    can infer; every operation here answers errors as engine.errors does, with these statuses:
    400, 500 and 503 always, 404 with path parameters, 401/403 behind API keys (operations of
    the `... (API key)` tags, and reads when reads need a key), 413/415 (and 409 for writes)
    with a body.
    """
    components = openapi.components
    components.schemas = {**(components.schemas or {}), "Error": ERROR_SCHEMA}
    components.security_schemes = {
        **(components.security_schemes or {}),
        "bearer": SecurityScheme(type="http", scheme="bearer", description="gmk_... API key"),
        "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
    }
    for path, item in (openapi.paths or {}).items():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is not None:
                _document_operation(path, method, operation, reads_require_key=reads_require_key)


def _document_operation(
    path: str, method: str, operation: Operation, *, reads_require_key: bool
) -> None:
    if (path, method) in _SEARCH_QUERIES:
        operation.parameters = [
            *(operation.parameters or ()),
            *(_query_parameter(name) for name in _SEARCH_QUERIES[path, method]),
        ]
    responses = {k: v for k, v in (operation.responses or {}).items() if k[0] not in "45"}
    statuses = {400, 500, 503, *_EXTRA_ERRORS.get((path, method), ())}
    if "{" in path:
        statuses.add(404)
    keyed = any("API key" in tag for tag in operation.tags or ())
    if keyed or reads_require_key:
        statuses |= {401, 403}
        operation.security = [{"bearer": []}, {"apiKey": []}]
    if operation.request_body is not None:
        statuses |= {409, 413, 415} if keyed else {413, 415}
    error = {"application/json": OpenAPIMediaType(schema=Reference("#/components/schemas/Error"))}
    for status in sorted(statuses):
        headers: dict[str, OpenAPIHeader | Reference] | None = None
        if status == 503:
            seconds = Schema(type=OpenAPIType.INTEGER)
            headers = {"Retry-After": OpenAPIHeader(schema=seconds, description="Seconds")}
        responses[str(status)] = OpenAPIResponse(
            description=_ERROR_DESCRIPTIONS[status], content=dict(error), headers=headers
        )
    for status, media_types in _MEDIA_TYPES.get((path, method), {}).items():
        response = responses.get(status)
        description = response.description if isinstance(response, OpenAPIResponse) else "OK"
        responses[status] = OpenAPIResponse(
            description=description,
            content={
                media: OpenAPIMediaType(schema=schema) for media, schema in media_types.items()
            },
        )
    operation.responses = responses


def _query_parameter(name: str) -> OpenAPIParameter:
    description, example = _DESCRIPTIONS[name]
    return OpenAPIParameter(
        name=name,
        param_in=ParamType.QUERY,
        required=False,
        description=description,
        schema=Schema(type=OpenAPIType.STRING),
        examples={name: Example(summary=name, value=example)} if example is not None else None,
    )
