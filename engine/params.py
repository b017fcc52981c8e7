"""Item-search parameters (GET query strings and POST bodies) -> one validated SearchRequest.

Each value is validated on its own and errors name the parameter (../shared/specs/STAC_API.md
section 1.2). Unknown parameters and body members are ignored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import cql2

from geomelt.db.parsing import (
    MAX_GEOMETRY_POSITIONS,
    GeometryTooLarge,
    InvalidValue,
    bbox_numbers,
    parse_bbox,
    parse_geometry,
    parse_instant,
    parse_interval,
)
from geomelt.db.queries.cql2sql import compile_cql2

from .config import EngineConfig
from .errors import InvalidParameter, PayloadTooLarge
from .limits import (
    MAX_JSON_DEPTH,
    check_cql2_json,
    check_cql2_text,
    check_strings,
    json_text_depth,
)
from .query_ext import query_to_cql2

__all__ = ["GET_PARAMETERS", "SearchRequest", "parse_get", "parse_post", "parse_rfc3339"]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
MAX_INTERSECTS_BYTES = 200_000
MAX_LIST_ITEMS = 1000
# GET `q` splits at commas into OR-ed keyword phrases; each is one tsquery in the SQL.
MAX_Q_PHRASES = 32


@dataclass(frozen=True, kw_only=True)
class SearchRequest:
    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    bbox: tuple[float, float, float, float] | None = None
    intersects: dict[str, Any] | None = None
    datetime_start: dt.datetime | None = None
    datetime_end: dt.datetime | None = None
    limit: int = 10
    sortby: tuple[tuple[str, bool], ...] = ()  # (field, descending)
    fields_include: tuple[str, ...] | None = None
    fields_exclude: tuple[str, ...] | None = None
    filter: Any = None  # normalised cql2-json
    q: str | None = None  # the text that is embedded
    q_phrases: tuple[str, ...] = ()  # keyword part: OR of these
    similar_to: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    image_ref: str | None = None
    token: str | None = None
    # The POST body as the client sent it (less the token), repeated in POST next links.
    ranking_body: dict[str, Any] = field(default_factory=dict)

    @property
    def ranked(self) -> bool:
        return bool(self.q or self.similar_to or self.image_ref)

    def fingerprint_source(self) -> dict[str, Any]:
        """What defines the result list (page size, fields and the token do not)."""
        data = asdict(self)
        for name in ("limit", "fields_include", "fields_exclude", "token", "ranking_body"):
            data.pop(name)
        return data


# Every key a POST /search body may have; any other is refused, never silently dropped.
POST_PARAMETERS = frozenset(
    (
        "bbox",
        "collections",
        "datetime",
        "fields",
        "filter",
        "filter-crs",
        "filter-lang",
        "ids",
        "image_ref",
        "intersects",
        "limit",
        "negative",
        "q",
        "query",
        "similar_to",
        "sortby",
        "token",
    )
)


# The query parameters of GET /search and GET /collections/{id}/items: parse_get reads these and
# no others, and the OpenAPI document lists exactly these (controllers/docs.py).
GET_PARAMETERS = (
    "collections",
    "ids",
    "bbox",
    "intersects",
    "datetime",
    "limit",
    "sortby",
    "fields",
    "filter",
    "filter-lang",
    "filter-crs",
    "query",
    "q",
    "similar_to",
    "negative",
    "image_ref",
    "token",
)


def parse_get(
    params: Mapping[str, str], config: EngineConfig, *, collection: str | None = None
) -> SearchRequest:
    """A request from a query string (`/search` or `/collections/{id}/items`)."""
    check_strings(params.items())
    params = {name: params[name] for name in GET_PARAMETERS if name in params}
    raw: dict[str, Any] = {}
    for name in ("collections", "ids", "similar_to", "negative"):
        if params.get(name):
            raw[name] = _split(params[name])
    if "bbox" in params:
        raw["bbox"] = _bbox_numbers(params["bbox"])
    if "intersects" in params:
        raw["intersects"] = _json_param("intersects", params["intersects"])
    for name in ("datetime", "limit", "token", "q", "image_ref", "filter-crs"):
        if name in params:
            raw[name] = params[name]
    if params.get("sortby"):
        raw["sortby"] = [_sort_term(term) for term in _split(params["sortby"])]
    if "fields" in params:
        raw["fields"] = _fields_text(params["fields"])
    if params.get("filter"):
        lang = params.get("filter-lang", "cql2-text")
        raw["filter"] = _filter_get(params["filter"], lang)
    if "query" in params:
        _add_query(raw, _json_param("query", params["query"]))
    if collection is not None:
        raw["collections"] = [collection]
    return _build(raw, config, get=True)


def _add_query(raw: dict[str, Any], query: Any) -> None:
    """The Query extension's `query`, AND-ed into `filter` (validated as CQL2 JSON)."""
    clauses = query_to_cql2(query)
    if clauses is None:
        return
    if raw.get("filter") is not None:
        clauses = {"op": "and", "args": [raw["filter"], clauses]}
    raw["filter"] = _normalise_cql2(clauses, "cql2-json")


def parse_post(body: Any, config: EngineConfig) -> SearchRequest:
    """A request from a POST /search JSON body."""
    if not isinstance(body, dict):
        raise InvalidParameter("body: expected a JSON object of search parameters")
    raw = dict(body)
    unknown = sorted(set(raw) - POST_PARAMETERS)
    if unknown:
        raise InvalidParameter(
            f"{', '.join(unknown)}: not a search parameter of this API; it takes "
            f"{', '.join(sorted(POST_PARAMETERS))}"
        )
    if "sortby" in raw:
        raw["sortby"] = _sort_post(raw["sortby"])
    if "fields" in raw:
        raw["fields"] = _fields_post(raw["fields"])
    if raw.get("filter") is not None:
        raw["filter"] = _filter_post(raw["filter"], raw.get("filter-lang"))
    _add_query(raw, raw.pop("query", None))
    if "intersects" in raw and raw["intersects"] is not None:
        size = len(json.dumps(raw["intersects"]))
        if size > MAX_INTERSECTS_BYTES:
            raise PayloadTooLarge(f"intersects: {size} bytes, more than {MAX_INTERSECTS_BYTES}")
    search = _build(raw, config, get=False)
    # POST next links repeat the whole body: clients that ignore `merge` (rustac) send only the
    # link's body, and the token belongs to exactly this query.
    return replace(search, ranking_body={k: v for k, v in body.items() if k != "token"})


def _build(raw: dict[str, Any], config: EngineConfig, *, get: bool) -> SearchRequest:
    if raw.get("bbox") is not None and raw.get("intersects") is not None:
        raise InvalidParameter("bbox, intersects: give one or the other, not both")
    crs = raw.get("filter-crs")
    if crs not in (None, CRS84):
        raise InvalidParameter(f"filter-crs: only {CRS84} is supported")
    start, end = _datetime(raw.get("datetime"))
    q, phrases = _q(raw.get("q"), config, get=get)
    similar_to = _id_list(raw.get("similar_to"), "similar_to", config.max_similar_to)
    negative = _id_list(raw.get("negative"), "negative", config.max_similar_to)
    image_ref = _optional_string(raw.get("image_ref"), "image_ref")
    if negative and not (q or similar_to or image_ref):
        raise InvalidParameter("negative: needs q or similar_to to move away from")
    ranking_body = {
        name: raw[name] for name in ("q", "similar_to", "negative", "image_ref") if raw.get(name)
    }
    fields = raw.get("fields") or (None, None)
    return SearchRequest(
        collections=_id_list(raw.get("collections"), "collections", MAX_LIST_ITEMS) or None,
        ids=_id_list(raw.get("ids"), "ids", MAX_LIST_ITEMS) or None,
        bbox=_bbox(raw.get("bbox")),
        intersects=_intersects(raw.get("intersects")),
        datetime_start=start,
        datetime_end=end,
        limit=_limit(raw.get("limit"), config),
        sortby=tuple(raw.get("sortby") or ()),
        fields_include=fields[0],
        fields_exclude=fields[1],
        filter=raw.get("filter"),
        q=q,
        q_phrases=phrases,
        similar_to=similar_to,
        negative=negative,
        image_ref=image_ref,
        token=_optional_string(raw.get("token"), "token"),
        ranking_body=ranking_body,
    )


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _optional_string(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"{name}: expected a string")
    return value


def _id_list(value: Any, name: str, maximum: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = _split(value)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidParameter(f"{name}: expected a list of non-empty strings")
    if len(value) > maximum:
        raise InvalidParameter(f"{name}: at most {maximum} values, got {len(value)}")
    return tuple(value)


def _bbox_numbers(text: str) -> list[float]:
    try:
        return bbox_numbers(text)
    except InvalidValue as exc:
        raise InvalidParameter(str(exc)) from exc


def _bbox(value: Any) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        return parse_bbox(value)
    except InvalidValue as exc:
        raise InvalidParameter(str(exc)) from exc


def _json_param(name: str, text: str) -> Any:
    if len(text) > MAX_INTERSECTS_BYTES:
        raise PayloadTooLarge(f"{name}: {len(text)} bytes, more than {MAX_INTERSECTS_BYTES}")
    depth = json_text_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise InvalidParameter(
            f"{name}: JSON nested {depth} levels deep, more than the {MAX_JSON_DEPTH} allowed"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameter(f"{name}: not valid JSON ({exc.msg})") from exc


def _intersects(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidParameter("intersects: expected a GeoJSON geometry object")
    try:
        parse_geometry(value, "intersects")
    except GeometryTooLarge as exc:
        raise PayloadTooLarge(f"intersects: more than {MAX_GEOMETRY_POSITIONS} positions") from exc
    except InvalidValue as exc:
        raise InvalidParameter(str(exc)) from exc
    return value


def parse_rfc3339(text: str, name: str = "datetime") -> dt.datetime:
    try:
        return parse_instant(text, name)
    except InvalidValue as exc:
        raise InvalidParameter(str(exc)) from exc


def _datetime(value: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    if value is None:
        return None, None
    try:
        return parse_interval(value)
    except InvalidValue as exc:
        raise InvalidParameter(str(exc)) from exc


def _limit(value: Any, config: EngineConfig) -> int:
    if value is None:
        return config.default_limit
    try:
        limit = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(f"limit: {value!r} is not an integer") from exc
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise InvalidParameter(f"limit: {value!r} is not an integer")
    if limit < 1:
        raise InvalidParameter(f"limit: must be at least 1, got {limit}")
    return min(limit, config.max_limit)


def _sort_term(term: str) -> tuple[str, bool]:
    # A '+' that was not URL-encoded arrives as a space.
    if term[0] in "+ -":
        return term[1:].strip(), term[0] == "-"
    return term, False


def _sort_post(value: Any) -> list[tuple[str, bool]]:
    if isinstance(value, str):
        return [_sort_term(term) for term in _split(value)]
    if not isinstance(value, list):
        raise InvalidParameter("sortby: expected a list of {field, direction}")
    terms = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
            raise InvalidParameter("sortby: each entry needs a 'field' string")
        direction = str(entry.get("direction", "asc")).lower()
        if direction not in ("asc", "desc"):
            raise InvalidParameter(f"sortby: direction must be asc or desc, got {direction!r}")
        terms.append((entry["field"], direction == "desc"))
    return terms


def _fields_text(text: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    include, exclude = [], []
    for term in _split(text):
        if term.startswith("-"):
            exclude.append(term[1:])
        else:
            include.append(term.lstrip("+ "))
    return (tuple(include) or None), tuple(exclude)


def _fields_post(value: Any) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """An absent `include` (None) differs from an empty one (): see stac.apply_fields."""
    if not isinstance(value, dict):
        raise InvalidParameter("fields: expected {include: [...], exclude: [...]}")
    parts: list[tuple[str, ...] | None] = []
    for name in ("include", "exclude"):
        entries = value.get(name)
        if entries is not None and (
            not isinstance(entries, list) or not all(isinstance(e, str) for e in entries)
        ):
            raise InvalidParameter(f"fields: {name} must be a list of strings")
        parts.append(None if name not in value else tuple(entries or ()))
    return parts[0], parts[1] or ()


def _filter_get(text: str, lang: str) -> Any:
    if lang == "cql2-json":
        return _normalise_cql2(_json_param("filter", text), "cql2-json")
    if lang != "cql2-text":
        raise InvalidParameter(f"filter-lang: {lang!r}; use cql2-text or cql2-json")
    return _normalise_cql2(text, "cql2-text")


def _filter_post(value: Any, lang: Any) -> Any:
    if lang not in (None, "cql2-json", "cql2-text"):
        raise InvalidParameter(f"filter-lang: {lang!r}; use cql2-text or cql2-json")
    if isinstance(value, str):
        if lang == "cql2-json":
            raise InvalidParameter("filter: a string is cql2-text but filter-lang is cql2-json")
        return _normalise_cql2(value, "cql2-text")
    if lang == "cql2-text":
        raise InvalidParameter("filter: a JSON object is cql2-json but filter-lang is cql2-text")
    return _normalise_cql2(value, "cql2-json")


def _legacy_between(node: Any) -> Any:
    """Rewrite the older cql2-json BETWEEN form `[property, [low, high]]` to three arguments."""
    if isinstance(node, list):
        return [_legacy_between(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _legacy_between(v) for k, v in node.items()}
    args = node.get("args")
    if (
        str(node.get("op", "")).lower() == "between"
        and isinstance(args, list)
        and len(args) == 2
        and isinstance(args[1], list)
        and len(args[1]) == 2
    ):
        node["args"] = [args[0], *args[1]]
    return node


def _normalise_cql2(value: Any, lang: str) -> Any:
    """Normalised cql2-json of a filter, checked by translating it to SQL.

    The limits are checked first: the parser overflows its stack on deep nesting. The `cql2`
    package's `validate()` is not called: it checks against the CQL2 JSON Schema, costing
    ~15 ms and ~100 MB on first use for a flat filter and growing quadratically with nesting
    (4 s and 1.8 GB at depth 100), while compile_cql2 checks every operator, arity, queryable
    and literal type it translates and refuses the rest.
    """
    if lang == "cql2-text":
        check_cql2_text(value)
    else:
        check_cql2_json(value)
        value = _legacy_between(value)
    try:
        if lang == "cql2-text":
            expression = cql2.parse_text(value)
        else:
            expression = cql2.parse_json(json.dumps(value))
        normalised = expression.to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise InvalidParameter(f"filter: invalid {lang}: {detail}") from exc
    if lang == "cql2-text":
        check_cql2_json(normalised)  # e.g. `a + a + ...`: few parentheses, deep nesting
    compile_cql2(normalised)  # unknown queryables, unsupported operators, wrong types fail here
    return normalised


def _q(value: Any, config: EngineConfig, *, get: bool) -> tuple[str | None, tuple[str, ...]]:
    if value is None:
        return None, ()
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        phrases = tuple(v.strip() for v in value if v.strip())
        text = ", ".join(phrases)
    elif isinstance(value, str):
        text = value.strip()
        # GET commas: OR-ed keyword pieces (the free-text meaning); the embedding sees it all.
        phrases = tuple(_split(text)) if get else (text,)
    else:
        raise InvalidParameter("q: expected a string or a list of strings")
    if not text or not phrases:
        raise InvalidParameter("q: empty; describe what to find, e.g. 'boats in a harbour'")
    if len(text) > config.max_q_length:
        raise InvalidParameter(
            f"q: {len(text)} characters, more than the {config.max_q_length} allowed"
        )
    if len(phrases) > MAX_Q_PHRASES:
        raise InvalidParameter(
            f"q: {len(phrases)} comma-separated phrases, more than the {MAX_Q_PHRASES} allowed; "
            "join them into fewer phrases"
        )
    return text, phrases
