"""A source's settings: parsed and checked once at the boundary, then passed around as values."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cql2

from .errors import SourceSettingsError

__all__ = ["SourceSpec", "parse_assets", "parse_bbox", "parse_duration", "parse_filter"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90s', '15m', '1h30m', '2d' -> seconds (>= 1)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise SourceSettingsError(
            f"duration {text!r}: not understood; write it like 90s, 15m, 1h30m or 2d"
        )
    seconds = round(sum(float(number) * _SECONDS[unit] for number, unit in parts))
    if seconds < 1:
        raise SourceSettingsError(f"duration {text!r}: must be at least 1s")
    return seconds


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """'minx,miny,maxx,maxy' in lon/lat -> a checked tuple."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise SourceSettingsError(
            f"bbox {text!r}: expected four numbers minx,miny,maxx,maxy (lon/lat)"
        )
    west, south, east, north = values
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise SourceSettingsError(
            f"bbox {text!r}: out of range or miny > maxy; order is minx,miny,maxx,maxy in degrees"
        )
    return west, south, east, north


def parse_filter(text: str) -> dict[str, Any]:
    """CQL2 text or JSON -> CQL2 JSON, validated."""
    try:
        expression = (
            cql2.parse_json(text) if text.lstrip().startswith("{") else cql2.parse_text(text)
        )
        expression.validate()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        raise SourceSettingsError(
            f'filter {text!r}: not valid CQL2 ({exc}); write e.g. "eo:cloud_cover < 20"'
        ) from exc
    return dict(expression.to_json())


def parse_assets(text: str | None) -> tuple[str, ...]:
    """'red,green,blue' | 'visual' | 'pan' | '' (automatic) -> asset keys."""
    if not text:
        return ()
    keys = tuple(key.strip() for key in text.split(",") if key.strip())
    if len(keys) not in (1, 3) or len(set(keys)) != len(keys):
        raise SourceSettingsError(
            f"assets {text!r}: give three band assets (red,green,blue), or one RGB asset "
            "(visual) or one grey band asset (pan)"
        )
    return keys


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceSettingsError(f"{what} {text!r}: not JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise SourceSettingsError(f"{what} {text!r}: expected a JSON object")
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
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}", self.name):
            raise SourceSettingsError(
                f"source name {self.name!r}: use up to 100 letters, digits and ._:@/-"
            )
        if not self.stac_api_url.startswith(("http://", "https://")):
            raise SourceSettingsError(
                f"STAC API URL {self.stac_api_url!r}: must start with http:// or https://"
            )
        if self.chip_size_px < 16 or not 0 <= self.overlap_px < self.chip_size_px:
            raise SourceSettingsError(
                f"chip size {self.chip_size_px} px, overlap {self.overlap_px} px: need chip >= 16 "
                "and 0 <= overlap < chip"
            )
        if self.resolution_m is not None and self.resolution_m <= 0:
            raise SourceSettingsError(f"resolution {self.resolution_m} m: must be positive")

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
            raise SourceSettingsError("give either --bbox or --intersects, not both")
        if filter_text and query:
            raise SourceSettingsError("give either --filter (CQL2) or --query, not both")
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
