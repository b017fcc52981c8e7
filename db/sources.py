"""Registered STAC sources: the one owner of their settings, checks, writes and look-ups.

The HTTP API (`/sources`) and the command line (`geomelt source`, `geomelt ingest`,
`geomelt demo`) both write sources through `create_source` / `update_source` /
`ensure_source`, so a source is checked the same way whoever registers it; every bad setting is
an `InvalidSource` naming the field, the constraint and the fix.

A source's URL is fetched by the workers, so registering one is a way to make this machine send
requests: only http(s) URLs are accepted, and hosts on loopback, link-local (cloud metadata),
private or other non-public addresses are refused unless the caller allows them (the local demo
serves its folder on loopback; `geomelt serve` refuses them unless configured otherwise).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import socket
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import cql2
from sqlalchemy import Connection, Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from .errors import Conflict, DbError, NotFound
from .models import Scene, Source
from .parsing import InvalidValue, parse_bbox

__all__ = [
    "MAX_CHIP_SIZE_PX",
    "MAX_RESOLUTION_M",
    "MIN_CHIP_SIZE_PX",
    "SOURCE_FIELDS",
    "InvalidSource",
    "check_source",
    "create_source",
    "delete_source",
    "ensure_source",
    "get_source",
    "list_sources",
    "update_source",
]

SOURCE_FIELDS = (
    "name",
    "stac_api_url",
    "collection",
    "search",
    "assets",
    "resolution_m",
    "chip_size_px",
    "overlap_px",
    "poll_every_s",
)
_COLUMNS = (
    Source.id,
    *(getattr(Source, f) for f in SOURCE_FIELDS),
    Source.watermark,
    Source.last_polled_at,
    Source.last_error,
    Source.created_at,
)

# Bounds that keep a source sane for the workers: a chip is read, captioned and embedded whole
# (4096 px RGB is 48 MB), ground sampling from 1 cm to 10 km, a poll period up to a year.
MIN_CHIP_SIZE_PX = 16
MAX_CHIP_SIZE_PX = 4096
MAX_RESOLUTION_M = 10_000.0
MAX_POLL_EVERY_S = 366 * 86_400
MAX_URL_CHARS = 2048
MAX_TEXT_CHARS = 256
MAX_ASSET_CHARS = 100
# The search object is passed to the STAC API as is; bounded before any parsing (CQL2 parsers
# recurse, and the JSON is stored and sent on every poll).
MAX_SEARCH_BYTES = 64 * 1024
MAX_SEARCH_DEPTH = 32
# Item-search parameters the poller passes on (pystac-client's names); it sets collections,
# limit and the filter language itself (the filter is CQL2 JSON, combined with the watermark's).
SEARCH_KEYS = ("ids", "bbox", "intersects", "datetime", "filter", "query")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidSource(DbError, ValueError):
    """A source's settings are invalid; the message names the field, the constraint and the fix."""


def check_source(
    values: Mapping[str, Any], *, allow_private_hosts: bool, partial: bool = False
) -> dict[str, Any]:
    """The source's settings checked and normalised, or `InvalidSource` naming the first fault.

    `partial`: a change, so only the fields given are checked (and none is required).
    """
    unknown = sorted(set(values) - set(SOURCE_FIELDS))
    if unknown:
        raise InvalidSource(f"source fields {unknown}: unknown; use {', '.join(SOURCE_FIELDS)}")
    required = () if partial else ("name", "stac_api_url", "collection")
    missing = [f for f in required if values.get(f) is None]
    if missing:
        raise InvalidSource(f"source: {', '.join(missing)} missing; every source needs them")
    checked = dict(values)
    if "name" in values:
        checked["name"] = _name(values["name"])
    if "stac_api_url" in values:
        checked["stac_api_url"] = _url(values["stac_api_url"], allow_private_hosts)
    if "collection" in values:
        checked["collection"] = _text("collection", values["collection"], MAX_TEXT_CHARS)
    if values.get("search") is not None:
        checked["search"] = _search(values["search"])
    if values.get("assets") is not None:
        checked["assets"] = _assets(values["assets"])
    if values.get("resolution_m") is not None:
        checked["resolution_m"] = _resolution(values["resolution_m"])
    if values.get("poll_every_s") is not None:
        checked["poll_every_s"] = _whole(
            "poll_every_s", values["poll_every_s"], 1, MAX_POLL_EVERY_S
        )
    if not partial or "chip_size_px" in values or "overlap_px" in values:
        _chipping(values.get("chip_size_px", 224), values.get("overlap_px", 0), partial)
    return checked


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidSource(
            f"source name {value!r}: use 1 to 100 letters, digits and ._:@/- "
            "(starting with a letter or digit)"
        )
    return value


def _text(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidSource(f"{field} {value!r}: give a non-empty text of at most {limit} chars")
    if _CONTROL.search(value):
        raise InvalidSource(f"{field} {value!r}: control characters (NUL, newline) not allowed")
    return value


def _url(value: Any, allow_private_hosts: bool) -> str:
    text = _text("stac_api_url", value, MAX_URL_CHARS)
    if any(c.isspace() for c in text):
        raise InvalidSource(f"stac_api_url {text!r}: contains spaces; give the URL percent-encoded")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidSource(f"stac_api_url {text!r}: not a URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSource(
            f"stac_api_url {text!r}: give an http:// or https:// URL with a host, "
            "e.g. https://earth-search.aws.element84.com/v1"
        )
    if not allow_private_hosts:
        _public_host(text, parts.hostname, port or (443 if parts.scheme == "https" else 80))
    return text.rstrip("/")


def _public_host(url: str, host: str, port: int) -> None:
    # Resolved now, as the workers will: a name that points at a private address is as
    # dangerous as the address itself (e.g. cloud metadata at 169.254.169.254).
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidSource(
            f"stac_api_url {url!r}: host {host!r} does not resolve ({exc}); check the URL"
        ) from exc
    for text in sorted({str(info[4][0]) for info in infos}):
        address = ipaddress.ip_address(text.split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_global:
            raise InvalidSource(
                f"stac_api_url {url!r}: host {host!r} is at {address}, a loopback, link-local, "
                "private or reserved address, which sources may not reach here; use a public "
                "STAC API, or allow private hosts (GEOMELT_ALLOW_PRIVATE_SOURCES=1) on a "
                "server whose users may reach this machine's network"
            )


def _search(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidSource(f"search {value!r}: expected an object with {', '.join(SEARCH_KEYS)}")
    unknown = sorted(set(value) - set(SEARCH_KEYS))
    if unknown:
        raise InvalidSource(f"search keys {unknown}: unknown; use {', '.join(SEARCH_KEYS)}")
    size = len(json.dumps(value, allow_nan=False))
    if size > MAX_SEARCH_BYTES or _depth(value) > MAX_SEARCH_DEPTH:
        raise InvalidSource(
            f"search: {size} bytes nested {_depth(value)} deep; at most {MAX_SEARCH_BYTES} "
            f"bytes and {MAX_SEARCH_DEPTH} levels"
        )
    if value.get("bbox") is not None:
        try:
            parse_bbox(value["bbox"], "search bbox", allow_elevation=False)
        except InvalidValue as exc:
            raise InvalidSource(str(exc)) from exc
    kinds = (("intersects", dict), ("datetime", str), ("query", dict), ("filter", dict))
    for key, kind in kinds:
        if value.get(key) is not None and not isinstance(value[key], kind):
            raise InvalidSource(f"search {key} {value[key]!r}: expected a {kind.__name__}")
    ids = value.get("ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise InvalidSource(f"search ids {ids!r}: expected a list of item ids")
    if value.get("filter") is not None:
        try:
            cql2.Expr(value["filter"]).validate()
        # cql2 (Rust) reports a body that fits no CQL2 expression as a bare Exception.
        except Exception as exc:
            raise InvalidSource(
                f"search filter {value['filter']!r}: not valid CQL2 JSON ({exc})"
            ) from exc
    return value


def _depth(value: Any) -> int:
    # Iterative: a hostile body nested thousands deep must not exhaust the stack here.
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_SEARCH_DEPTH:
            return depth
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return deepest


def _assets(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or len(value) not in (0, 1, 3):
        raise InvalidSource(
            f"assets {value!r}: give three band assets (red,green,blue), one RGB asset "
            "(visual), one grey band asset (pan), or none (automatic)"
        )
    keys = [_text("asset", key, MAX_ASSET_CHARS) for key in value]
    if len(set(keys)) != len(keys):
        raise InvalidSource(f"assets {value!r}: each asset once")
    return keys


def _resolution(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_RESOLUTION_M
        or not math.isfinite(value)
    ):
        raise InvalidSource(
            f"resolution_m {value!r}: metres per pixel, more than 0 and at most "
            f"{MAX_RESOLUTION_M:g}; omit it for the item's native resolution"
        )
    return float(value)


def _whole(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSource(f"{field} {value!r}: a whole number from {low} to {high}")
    return value


def _chipping(chip_size_px: Any, overlap_px: Any, partial: bool) -> None:
    size = _whole("chip_size_px", chip_size_px, MIN_CHIP_SIZE_PX, MAX_CHIP_SIZE_PX)
    overlap = _whole("overlap_px", overlap_px, 0, MAX_CHIP_SIZE_PX - 1)
    # A change of one of the two is checked against the other in the database's constraint.
    if not partial and overlap >= size:
        raise InvalidSource(
            f"overlap_px {overlap}: must be smaller than chip_size_px {size} (chips would repeat)"
        )


def create_source(
    connection: Connection, values: Mapping[str, Any], *, allow_private_hosts: bool
) -> dict[str, Any]:
    """Register a new source; an existing name is an error (remove it first)."""
    checked = check_source(values, allow_private_hosts=allow_private_hosts)
    row = connection.execute(
        insert(Source)
        .values(**checked)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(*_COLUMNS)
    ).first()
    if row is None:
        raise Conflict(
            f"source {checked['name']!r} exists already; remove it first "
            f"(`geomelt source remove {checked['name']}`) or choose another name"
        )
    return dict(row._mapping)


def ensure_source(
    connection: Connection, values: Mapping[str, Any], *, allow_private_hosts: bool
) -> dict[str, Any]:
    """The source with this name, created or changed to `values` (for one-shot ingests)."""
    checked = check_source(values, allow_private_hosts=allow_private_hosts)
    changes = {k: v for k, v in checked.items() if k != "name"}
    statement = insert(Source).values(**checked)
    statement = statement.on_conflict_do_update(index_elements=["name"], set_=changes)
    return dict(connection.execute(statement.returning(*_COLUMNS)).one()._mapping)


def update_source(
    connection: Connection,
    key: int | str,
    values: Mapping[str, Any],
    *,
    allow_private_hosts: bool,
) -> dict[str, Any]:
    """Change the given fields of the source with this id or name."""
    current = get_source(connection, key)
    checked = check_source(values, allow_private_hosts=allow_private_hosts, partial=True)
    if not checked:
        return current
    _chipping(
        checked.get("chip_size_px", current["chip_size_px"]),
        checked.get("overlap_px", current["overlap_px"]),
        partial=False,
    )
    row = connection.execute(
        update(Source).where(Source.id == current["id"]).values(**checked).returning(*_COLUMNS)
    ).one()
    return dict(row._mapping)


def get_source(connection: Connection, key: int | str) -> dict[str, Any]:
    """The source with this id (HTTP) or name (command line)."""
    column = Source.id if isinstance(key, int) else Source.name
    row = connection.execute(select(*_COLUMNS).where(column == key)).first()
    if row is None:
        known = connection.execute(select(Source.name).order_by(Source.name).limit(20)).scalars()
        raise NotFound(
            f"source {key!r}: no such source; known sources: {', '.join(known) or 'none'} "
            "(register one with `geomelt source add` or POST /sources)"
        )
    return dict(row._mapping)


def list_sources(connection: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in connection.execute(select(*_COLUMNS).order_by(Source.id))]


def delete_source(connection: Connection, key: int | str) -> int:
    """Delete the source with its scenes and chips (ON DELETE CASCADE); returns its scenes."""
    source_id = get_source(connection, key)["id"]
    scenes = connection.execute(
        select(func.count()).select_from(Scene).where(Scene.source_id == source_id)
    ).scalar_one()
    connection.execute(delete(cast(Table, Source.__table__)).where(Source.id == source_id))
    return int(scenes)
