"""A source's settings: parsed and checked once at the boundary, then passed around as values."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cql2

from geomelt.db import parsing
from geomelt.db.sources import InvalidSource, check_source

__all__ = ["SourceSpec", "parse_assets", "parse_bbox", "parse_duration", "parse_filter"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90s', '15m', '1h30m', '2d' -> seconds (>= 1)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise InvalidSource(
            f"duration {text!r}: not understood; write it like 90s, 15m, 1h30m or 2d"
        )
    seconds = round(sum(float(number) * _SECONDS[unit] for number, unit in parts))
    if seconds < 1:
        raise InvalidSource(f"duration {text!r}: must be at least 1s")
    return seconds


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """'minx,miny,maxx,maxy' in lon/lat -> a checked tuple (no elevations: sources are 2-D)."""
    try:
        return parsing.parse_bbox(parsing.bbox_numbers(text), allow_elevation=False)
    except parsing.InvalidValue as exc:
        raise InvalidSource(str(exc)) from exc


def parse_filter(text: str) -> dict[str, Any]:
    """CQL2 text or JSON -> CQL2 JSON, validated."""
    try:
        expression = (
            cql2.parse_json(text) if text.lstrip().startswith("{") else cql2.parse_text(text)
        )
        expression.validate()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        raise InvalidSource(
            f'filter {text!r}: not valid CQL2 ({exc}); write e.g. "eo:cloud_cover < 20"'
        ) from exc
    return dict(expression.to_json())


def parse_assets(text: str | None) -> tuple[str, ...]:
    """'red,green,blue' | 'visual' | 'pan' | '' (automatic) -> asset keys."""
    if not text:
        return ()
    keys = tuple(key.strip() for key in text.split(",") if key.strip())
    if len(keys) not in (1, 3) or len(set(keys)) != len(keys):
        raise InvalidSource(
            f"assets {text!r}: give three band assets (red,green,blue), or one RGB asset "
            "(visual) or one grey band asset (pan)"
        )
    return keys


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSource(f"{what} {text!r}: not JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise InvalidSource(f"{what} {text!r}: expected a JSON object")
    return value


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    """What to ingest from where, and how to cut it."""

    name: str
    stac_api_url: str
    collection: str
    # Item-search parameters besides collections: bbox, intersects, datetime, filter, query.
    search: dict[str, Any] = field(default_factory=dict)
    assets: tuple[str, ...] = ()
    resolution_m: float | None = None
    chip_size_px: int = 224
    overlap_px: int = 0
    poll_every_s: int | None = None

    def __post_init__(self) -> None:
        # The checks every source gets, however it is registered (geomelt.db.sources); whether
        # its host may be private is decided where it is written.
        check_source(self.values(), allow_private_hosts=True)

    def values(self) -> dict[str, Any]:
        """The settings as `geomelt.db.sources` stores them."""
        return {
            "name": self.name,
            "stac_api_url": self.stac_api_url,
            "collection": self.collection,
            "search": self.search,
            "assets": list(self.assets),
            "resolution_m": self.resolution_m,
            "chip_size_px": self.chip_size_px,
            "overlap_px": self.overlap_px,
            "poll_every_s": self.poll_every_s,
        }

    @classmethod
    def from_options(
        cls,
        *,
        name: str,
        stac_api_url: str,
        collection: str,
        bbox: str | None = None,
        intersects: str | None = None,
        datetime: str | None = None,
        filter_text: str | None = None,
        query: str | None = None,
        assets: str | None = None,
        resolution_m: float | None = None,
        chip_size_px: int = 224,
        overlap_px: int = 0,
        every: str | None = None,
    ) -> SourceSpec:
        """Build from command-line strings, checking each one."""
        if bbox and intersects:
            raise InvalidSource("give either --bbox or --intersects, not both")
        if filter_text and query:
            raise InvalidSource("give either --filter (CQL2) or --query, not both")
        search: dict[str, Any] = {}
        if bbox:
            search["bbox"] = list(parse_bbox(bbox))
        if intersects:
            search["intersects"] = _json_object(intersects, "intersects")
        if datetime:
            search["datetime"] = datetime
        if filter_text:
            search["filter"] = parse_filter(filter_text)
        if query:
            search["query"] = _json_object(query, "query")
        return cls(
            name=name,
            stac_api_url=stac_api_url.rstrip("/"),
            collection=collection,
            search=search,
            assets=parse_assets(assets),
            resolution_m=resolution_m,
            chip_size_px=chip_size_px,
            overlap_px=overlap_px,
            poll_every_s=parse_duration(every) if every else None,
        )


def describe_search(search: dict[str, Any], assets: Sequence[str]) -> str:
    """One line for listings."""
    parts = [f"{key}={json.dumps(value, separators=(',', ':'))}" for key, value in search.items()]
    parts.append("assets=" + (",".join(assets) or "auto"))
    return " ".join(parts)
