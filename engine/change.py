"""Change search (`/changes`) and cell timelines (`/cells/{cell_id}`): parameters, the query in
one transaction, pages and documents.

Chips of every acquisition of a place share ground-grid cells (workers/grid.py); a change
search compares, per cell of a region, the chip of the `before` range with the chip of the
`after` range (db/queries/change.py). Ranges are intervals like `datetime` (RFC 3339 or plain
dates, `..` open); a single instant is refused: there is nothing to range over.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import numpy as np

from geomelt.db import unit_of_work
from geomelt.db.queries.change import (
    ChangeQuery,
    DateRange,
    cell_timeline,
    change_page,
    count_changed_cells,
    nearest_acquisition,
    range_has_acquisitions,
)

from .errors import InvalidParameter, ItemNotFound
from .params import SearchRequest, parse_get, parse_post, parse_rfc3339
from .service import SearchService
from .stac import rfc3339
from .tokens import decode_token, encode_token, fingerprint

__all__ = [
    "ChangePage",
    "ChangeRequest",
    "ChangeService",
    "change_feature",
    "parse_change_get",
    "parse_change_post",
    "parse_range",
    "timeline_document",
]

# The region and ranking parameters /changes shares with /search (parsed and checked there).
_SHARED = ("bbox", "intersects", "collections", "limit", "q")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_END_OF_DAY = dt.time(23, 59, 59, 999_999)


@dataclass(frozen=True, kw_only=True)
class ChangeRequest:
    search: SearchRequest  # region, collections, limit, q
    before: DateRange
    after: DateRange
    before_text: str
    after_text: str
    token: str | None = None
    # The POST body as sent (less the token), repeated in POST next links.
    body: dict[str, Any] = field(default_factory=dict)

    def fingerprint_source(self) -> dict[str, Any]:
        source = self.search.fingerprint_source()
        return {**source, "before": self.before_text, "after": self.after_text}


@dataclass
class ChangePage:
    rows: list[Any]
    rank_offset: int
    next_token: str | None
    number_matched: int
    info: dict[str, Any]


def _moment(text: str, name: str, *, end: bool) -> dt.datetime:
    if _DATE.match(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError as exc:
            raise InvalidParameter(f"{name}: {text!r} is not a valid date ({exc})") from exc
        return dt.datetime.combine(day, _END_OF_DAY if end else dt.time(0), tzinfo=dt.UTC)
    return parse_rfc3339(text, name)


def parse_range(value: Any, name: str) -> DateRange:
    """`start/end` (RFC 3339 date-times or dates, `..` or empty for an open end)."""
    example = "e.g. 2012-01-01/2012-12-31"
    if value is None or value == "":
        raise InvalidParameter(f"{name}: required, a date range start/end ({example})")
    if not isinstance(value, str):
        raise InvalidParameter(f"{name}: expected a string start/end ({example})")
    parts = value.split("/")
    if len(parts) == 1:
        raise InvalidParameter(
            f"{name}: {value!r} is a single date; change search compares two ranges: give "
            f"start/end ({example})"
        )
    if len(parts) != 2:
        raise InvalidParameter(f"{name}: {value!r} has more than one '/' ({example})")
    start_text, end_text = parts
    start = None if start_text in ("", "..") else _moment(start_text, name, end=False)
    end = None if end_text in ("", "..") else _moment(end_text, name, end=True)
    if start is None and end is None:
        raise InvalidParameter(f"{name}: {value!r} is open at both ends ({example})")
    if start is not None and end is not None and end < start:
        raise InvalidParameter(f"{name}: {value!r} ends before it starts")
    if start is not None and end is not None and start == end:
        raise InvalidParameter(
            f"{name}: {value!r} is a single date; give a range that spans time ({example})"
        )
    return DateRange(start, end)


def _build(
    search: SearchRequest, before_value: Any, after_value: Any, token: Any, body: dict[str, Any]
) -> ChangeRequest:
    if search.bbox is None and search.intersects is None:
        raise InvalidParameter(
            "bbox: change search needs a region; give bbox (west,south,east,north) or intersects"
        )
    before = parse_range(before_value, "before")
    after = parse_range(after_value, "after")
    if before.overlaps(after):
        raise InvalidParameter(
            f"after: {after_value} overlaps before ({before_value}); the ranges must not overlap"
        )
    if token is not None and not isinstance(token, str):
        raise InvalidParameter("token: expected the string of a next link")
    return ChangeRequest(
        search=search,
        before=before,
        after=after,
        before_text=str(before_value),
        after_text=str(after_value),
        token=token or None,
        body=body,
    )


def parse_change_get(params: Mapping[str, str], config: Any) -> ChangeRequest:
    search = parse_get({k: v for k, v in params.items() if k in _SHARED}, config)
    return _build(search, params.get("before"), params.get("after"), params.get("token"), {})


def parse_change_post(body: Any, config: Any) -> ChangeRequest:
    if not isinstance(body, dict):
        raise InvalidParameter("body: expected a JSON object of change-search parameters")
    search = parse_post({k: v for k, v in body.items() if k in _SHARED}, config)
    kept = {k: v for k, v in body.items() if k != "token"}
    return _build(search, body.get("before"), body.get("after"), body.get("token"), kept)


def _show(moment: dt.datetime) -> str:
    if moment.time() in (dt.time(0), _END_OF_DAY):
        return moment.date().isoformat()
    return rfc3339(moment) or ""


def _span(period: DateRange) -> str:
    start = _show(period.start) if period.start is not None else None
    end = _show(period.end) if period.end is not None else None
    if start and end:
        return f"between {start} and {end}"
    return f"after {start}" if start else f"before {end}"


class ChangeService:
    """Change search and timelines over the search service's database and model."""

    def __init__(self, search: SearchService) -> None:
        self.search = search

    def changes(self, request: ChangeRequest) -> ChangePage:
        config = self.search.config
        query_fingerprint = fingerprint(request.fingerprint_source())
        after_key, returned = None, 0
        if request.token:
            keys, returned = decode_token(
                config.secret,
                request.token,
                query_fingerprint=query_fingerprint,
                ttl_s=config.token_ttl_s,
            )
            if len(keys) != 2 or not isinstance(keys[0], int | float):
                raise InvalidParameter("token: does not belong to a change search")
            after_key = (float(keys[0]), str(keys[1]))
        vector = None
        if request.search.q:
            vector = np.asarray(
                self.search.model.encode_texts([request.search.q])[0], dtype=np.float32
            )
        limit = request.search.limit
        with unit_of_work(self.search.engine) as connection:
            model_id = self.search.model_id(connection)
            if model_id is None:
                raise InvalidParameter("before: no acquisitions in this region; nothing indexed")
            query = ChangeQuery(
                model_id=model_id,
                before=request.before,
                after=request.after,
                bbox=request.search.bbox,
                intersects=request.search.intersects,
                collections=request.search.collections,
                query_vector=vector,
            )
            for name, period in (("before", request.before), ("after", request.after)):
                if not range_has_acquisitions(connection, query, period):
                    nearest = nearest_acquisition(connection, query, period)
                    found = (
                        f"nearest {_show(nearest)}"
                        if nearest is not None
                        else "the region has no acquisitions at all"
                    )
                    raise InvalidParameter(
                        f"{name}: no acquisitions {_span(period)} in this region; {found}"
                    )
            rows = change_page(connection, query, after_key=after_key, limit=limit + 1)
            matched = count_changed_cells(connection, query)
        next_token = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_token = encode_token(
                config.secret,
                keys=[float(rows[-1].score), str(rows[-1].cell_id)],
                query_fingerprint=query_fingerprint,
                returned=returned + len(rows),
            )
        info = {
            "score": "gain" if vector is not None else "distance",
            "model": self.search.model_label,
            "before": request.before_text,
            "after": request.after_text,
        }
        return ChangePage(rows, returned, next_token, matched, info)

    def timeline(self, cell_id: str) -> list[Any]:
        with unit_of_work(self.search.engine) as connection:
            model_id = self.search.model_id(connection)
            rows = (
                []
                if model_id is None
                else cell_timeline(connection, model_id=model_id, cell_id=cell_id)
            )
        if not rows:
            raise ItemNotFound(f"cell {cell_id!r}: no chips of this cell are indexed")
        return rows


def _chip(base: str, row: Any, prefix: str = "") -> dict[str, Any]:
    def value(name: str) -> Any:
        return getattr(row, prefix + name)

    href = (
        f"{base}/collections/{quote(value('collection'), safe='')}/items/"
        f"{quote(value('item_id'), safe='')}"
    )
    chip: dict[str, Any] = {
        "id": value("item_id"),
        "collection": value("collection"),
        "datetime": rfc3339(value("datetime")),
        "caption": value("caption"),
        "valid_fraction": value("valid_fraction"),
        "href": href,
    }
    if value("start_datetime") != value("end_datetime"):  # dated by an interval (a year, say)
        chip["start_datetime"] = rfc3339(value("start_datetime"))
        chip["end_datetime"] = rfc3339(value("end_datetime"))
    if value("thumbnail_media_type"):
        chip["thumbnail"] = f"{href}/thumbnail"
    return chip


def _bbox(geometry: dict[str, Any]) -> list[float]:
    ring = geometry["coordinates"][0]
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    return [min(xs), min(ys), max(xs), max(ys)]


def change_feature(base: str, row: Any, rank: int) -> dict[str, Any]:
    """One changed cell as a GeoJSON Feature: its footprint, score and both chips."""
    return {
        "type": "Feature",
        "id": row.cell_id,
        "geometry": row.geometry,
        "bbox": _bbox(row.geometry),
        "properties": {
            "change:score": float(row.score),
            "change:distance": float(row.distance),
            "change:rank": rank,
            "before": _chip(base, row, "b_"),
            "after": _chip(base, row, "a_"),
        },
        "links": [
            {
                "rel": "timeline",
                "href": f"{base}/cells/{quote(row.cell_id, safe='')}",
                "type": "application/json",
            }
        ],
    }


def timeline_document(base: str, cell_id: str, rows: list[Any]) -> dict[str, Any]:
    """Every acquisition of a cell in date order, with captions and links to the chips."""
    return {
        "cell_id": cell_id,
        "geometry": rows[0].geometry,
        "timeline": [_chip(base, row) for row in rows],
        "links": [
            {
                "rel": "self",
                "href": f"{base}/cells/{quote(cell_id, safe='')}",
                "type": "application/json",
            },
            {"rel": "root", "href": f"{base}/", "type": "application/json"},
        ],
    }
