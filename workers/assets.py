"""Which assets of a STAC item to read, and which of their bands are red, green, blue (pure).

The automatic choice reads what catalogs publish, not only asset keys: roles (`visual`, `data`),
media types (GeoTIFF / COG), band common names in `eo:bands` (STAC 1.0) or `bands` (STAC 1.1,
`eo:common_name`), and `raster:bands` scale, offset and nodata. In order:

1. three single-band assets named or labelled red, green, blue (Sentinel-2 L2A, Landsat C2 L2);
2. a `visual` asset (role or key): its bands by common name, else bands 1, 2, 3 (Maxar, TCI);
3. one multi-band data asset whose bands name red, green, blue (Planetary Computer NAIP `image`);
4. a panchromatic band (key `pan` or common name `pan`), read as grey;
5. a stated false colour: one multi-band asset with near-infrared, red and green but no blue;
6. the only raster asset of an item that says nothing about its bands (a drone ortho): bands
   1, 2, 3, as orthophotos store them (alpha or nodata masks the rest).
Anything else is refused with the assets seen and the `--assets` to pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ChipError

__all__ = ["AssetChoice", "Band", "asset_bands", "check_projection", "choose_assets"]

_RGB = ("red", "green", "blue")
_NIR = ("nir", "nir08", "nir09", "nir narrow")
_RASTER_TYPES = ("image/tiff", "geotiff", "image/jp2", "image/vnd.stac.geotiff")
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
# Keys that name one spectral band other than red, green, blue: such an asset is not RGB.
_OTHER_BAND = re.compile(r"(nir|swir|red-?edge|coastal|lwir|tir|thermal|cirrus|b\d|band\d)")
_NOT_IMAGERY_ROLES = {"thumbnail", "overview", "metadata", "cloud", "snow-ice", "data-mask"}


@dataclass(frozen=True)
class Band:
    """One band of an asset as the item describes it (every field optional)."""

    name: str | None = None
    common_name: str | None = None
    data_type: str | None = None
    nodata: float | None = None
    scale: float | None = None
    offset: float | None = None


@dataclass(frozen=True)
class AssetChoice:
    """What to read: `keys` (three single-band assets, or one) and the 1-based `bands` of them.

    `names` are the common names of the three (or one) output channels; `kind` is `rgb`, `pan`
    or `false colour`; `reason` says in one line how the choice was made.
    """

    keys: tuple[str, ...]
    bands: tuple[int, ...]
    names: tuple[str, ...]
    kind: str
    reason: str
    scales: tuple[float | None, ...] = ()
    offsets: tuple[float | None, ...] = ()
    nodata: tuple[float | None, ...] = ()

    def record(self) -> dict[str, Any]:
        """The choice as JSON for the scene's record (`geomelt:read`)."""
        return {
            "assets": list(self.keys),
            "bands": list(self.bands),
            "names": list(self.names),
            "kind": self.kind,
            "reason": self.reason,
            "scale": list(self.scales),
            "offset": list(self.offsets),
            "nodata": list(self.nodata),
        }


def _number(value: Any, what: str, item_id: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() == "nan":
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChipError(
            f"item {item_id!r}: {what} is {value!r}, not a number; fix the item's raster:bands"
        )
    return float(value)


def asset_bands(asset: Mapping[str, Any], item_id: Any, key: str) -> list[Band]:
    """The asset's bands from `bands` (STAC 1.1), `eo:bands` and `raster:bands`, merged by index.

    Raises ChipError naming the asset when one of these is not a list of objects or a scale,
    offset or nodata is not a number: a malformed item is named, not guessed around.
    """
    lists: dict[str, list[dict[str, Any]]] = {}
    for field in ("bands", "eo:bands", "raster:bands"):
        value = asset.get(field)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(b, dict) for b in value):
            raise ChipError(
                f"item {item_id!r}: asset {key!r} {field} is not a list of band objects "
                f"({str(value)[:80]}); fix the item"
            )
        lists[field] = value
    count = max((len(v) for v in lists.values()), default=0)
    bands = []
    for index in range(count):
        merged: dict[str, Any] = {}
        for field in ("raster:bands", "eo:bands", "bands"):
            if index < len(lists.get(field, ())):
                merged.update(lists[field][index])
        where = f"asset {key!r} band {index + 1}"
        common = merged.get("eo:common_name", merged.get("common_name"))
        data_type = merged.get("data_type")
        bands.append(
            Band(
                name=str(merged["name"]) if merged.get("name") is not None else None,
                common_name=str(common).lower() if common is not None else None,
                data_type=str(data_type) if data_type is not None else None,
                nodata=_number(merged.get("nodata"), f"{where} nodata", item_id),
                scale=_number(
                    merged.get("raster:scale", merged.get("scale")), f"{where} scale", item_id
                ),
                offset=_number(
                    merged.get("raster:offset", merged.get("offset")), f"{where} offset", item_id
                ),
            )
        )
    return bands


def check_projection(item: Mapping[str, Any]) -> None:
    """Raise ChipError naming a malformed proj:epsg, proj:code, proj:shape or proj:transform.

    They are checked on the item and on each asset; absent is fine (the file says).
    """
    item_id = item.get("id")
    places: list[tuple[str, Mapping[str, Any]]] = [("item", item.get("properties") or {})]
    for key, asset in (item.get("assets") or {}).items():
        if isinstance(asset, dict):
            places.append((f"asset {key!r}", asset))
    for where, fields in places:
        problem = _projection_problem(fields)
        if problem:
            raise ChipError(f"item {item_id!r}: {where} {problem}; fix the item's projection")


def _projection_problem(fields: Mapping[str, Any]) -> str | None:
    epsg = fields.get("proj:epsg")
    if epsg is not None and (isinstance(epsg, bool) or not isinstance(epsg, int) or epsg <= 0):
        return f"proj:epsg {epsg!r} is not a positive integer EPSG code"
    code = fields.get("proj:code")
    if code is not None and (not isinstance(code, str) or ":" not in code):
        return f"proj:code {code!r} is not an AUTHORITY:CODE string such as 'EPSG:32633'"
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        number = code.split(":", 1)[1]
        if not number.isdigit():
            return f"proj:code {code!r} has no integer EPSG code"
    shape = fields.get("proj:shape")
    if shape is not None and not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):
        return f"proj:shape {shape!r} is not [rows, columns] of positive integers"
    transform = fields.get("proj:transform")
    if transform is not None and not (
        isinstance(transform, list)
        and len(transform) in (6, 9)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in transform)
        and transform[0] != 0
        and transform[4] != 0
    ):
        return (
            f"proj:transform {str(transform)[:80]} is not 6 (or 9) numbers of an invertible "
            "affine transform (a, b, c, d, e, f)"
        )
    return None


def _is_raster(asset: Mapping[str, Any]) -> bool:
    roles = set(asset.get("roles") or ())
    if roles & _NOT_IMAGERY_ROLES and not roles & {"data", "visual"}:
        return False
    media_type = str(asset.get("type") or "").lower()
    if media_type:
        return any(kind in media_type for kind in _RASTER_TYPES)
    href = str(asset.get("href") or "").lower().split("?", 1)[0]
    return href.endswith(_RASTER_SUFFIXES)


def _common(bands: Sequence[Band], key: str) -> list[str | None]:
    """Common names (else names) of the bands; an asset whose bands are unnamed is named by its
    key when it has one band (`red`, `pan`), and has no names otherwise."""
    names: list[str | None] = [b.common_name or (b.name or "").lower() or None for b in bands]
    if not any(names):
        return [key.lower()] if len(names) <= 1 else [None] * len(names)
    return names


def _band_asset(
    single: Mapping[str, str | None], rasters: Mapping[str, Any], colour: str
) -> str | None:
    """The single-band asset of `colour`: the one keyed so first, COG before JPEG 2000."""
    found = [key for key, name in single.items() if name == colour]
    found.sort(key=lambda k: (k.lower() != colour, "jp2" in str(rasters[k].get("type", ""))))
    return found[0] if found else None


def _indexes(names: Sequence[str | None], wanted: Sequence[str]) -> tuple[int, ...] | None:
    found = []
    for colour in wanted:
        matches = [i for i, name in enumerate(names, start=1) if name == colour]
        if not matches and colour == "nir":
            matches = [i for i, name in enumerate(names, start=1) if name in _NIR]
        if not matches:
            return None
        found.append(matches[0])
    return tuple(found)


def _choice(
    keys: Sequence[str],
    bands: Sequence[int],
    names: Sequence[str],
    kind: str,
    reason: str,
    described: Mapping[str, list[Band]],
) -> AssetChoice:
    per_channel = (
        [
            described[keys[0]][index - 1] if index <= len(described[keys[0]]) else Band()
            for index in bands
        ]
        if len(keys) == 1
        else [described[key][0] if described[key] else Band() for key in keys]
    )
    return AssetChoice(
        tuple(keys),
        tuple(bands),
        tuple(names),
        kind,
        reason,
        tuple(b.scale for b in per_channel),
        tuple(b.offset for b in per_channel),
        tuple(b.nodata for b in per_channel),
    )


def choose_assets(item: Mapping[str, Any], requested: Sequence[str]) -> AssetChoice:
    """The requested assets, or the automatic choice described in the module docstring."""
    item_id = item.get("id")
    available = item.get("assets") or {}
    usable = {
        key: asset
        for key, asset in available.items()
        if isinstance(asset, dict) and isinstance(asset.get("href"), str) and asset["href"]
    }
    described = {key: asset_bands(asset, item_id, key) for key, asset in usable.items()}
    if requested:
        return _requested(item_id, usable, described, requested)
    rasters = {key: asset for key, asset in usable.items() if _is_raster(asset)}
    names = {key: _common(described[key], key) for key in rasters}
    single = {key: n[0] for key, n in names.items() if len(n) == 1 and n[0]}
    by_colour = {colour: _band_asset(single, rasters, colour) for colour in _RGB}
    if all(by_colour.values()):
        keys = [str(by_colour[c]) for c in _RGB]
        return _choice(keys, (1, 1, 1), _RGB, "rgb", f"band assets {', '.join(keys)}", described)
    visual = [k for k, a in rasters.items() if "visual" in (a.get("roles") or ()) or k == "visual"]
    for key in visual:
        found = _indexes(names[key], _RGB)
        if found is not None or not any(names[key]) or names[key] == [key]:
            return _choice(
                [key],
                found or (1, 2, 3),
                _RGB,
                "rgb",
                f"visual asset {key!r} bands {', '.join(map(str, found or (1, 2, 3)))}",
                described,
            )
    for key in rasters:
        found = _indexes(names[key], _RGB)
        if found is not None and len(names[key]) >= 3:
            reason = f"asset {key!r} bands {', '.join(map(str, found))} (red, green, blue)"
            return _choice([key], found, _RGB, "rgb", reason, described)
    pan = next((k for k, n in names.items() if "pan" in n or k == "pan"), None)
    if pan is not None:
        index = names[pan].index("pan") + 1 if "pan" in names[pan] else 1
        return _choice([pan], (index,), ("pan",), "pan", f"panchromatic asset {pan!r}", described)
    for key in rasters:
        found = _indexes(names[key], ("nir", "red", "green"))
        if found is not None:
            reason = (
                f"false colour: asset {key!r} bands {', '.join(map(str, found))} (nir, red, green)"
            )
            return _choice([key], found, ("nir", "red", "green"), "false colour", reason, described)
    undescribed = [k for k in rasters if not any(names[k]) or names[k] == [k.lower()]]
    if len(rasters) == 1 and undescribed and not _OTHER_BAND.match(undescribed[0].lower()):
        key = undescribed[0]
        reason = f"the only raster asset {key!r}, bands 1, 2, 3 (no band metadata)"
        return _choice([key], (1, 2, 3), _RGB, "rgb", reason, described)
    raise ChipError(_refusal(item_id, usable, names))


def _requested(
    item_id: Any,
    usable: Mapping[str, Any],
    described: Mapping[str, list[Band]],
    requested: Sequence[str],
) -> AssetChoice:
    missing = [key for key in requested if key not in usable]
    if missing:
        raise ChipError(
            f"item {item_id!r}: no usable asset {', '.join(missing)}; it has "
            f"{', '.join(sorted(usable)) or 'no assets'}; change the source's --assets"
        )
    if len(requested) == 3:
        return _choice(
            requested, (1, 1, 1), _RGB, "rgb", "--assets " + ",".join(requested), described
        )
    key = requested[0]
    names = _common(described[key], key)
    if len(described[key]) == 1 or names == ["pan"]:
        return _choice([key], (1,), ("pan",), "pan", f"--assets {key} (one band)", described)
    found = _indexes(names, _RGB) or (1, 2, 3)
    reason = f"--assets {key}, bands {', '.join(map(str, found))}"
    return _choice([key], found, _RGB, "rgb", reason, described)


def _refusal(item_id: Any, usable: Mapping[str, Any], names: Mapping[str, list[str | None]]) -> str:
    seen = []
    for key, asset in usable.items():
        roles = ",".join(asset.get("roles") or ()) or "no roles"
        kind = str(asset.get("type") or "no type").split(";")[0]
        bands = "/".join(n or "?" for n in names.get(key, [])) if key in names else "not a raster"
        seen.append(f"{key} ({kind}, {roles}, bands {bands or '?'})")
    rasters = [k for k in names]
    example = ",".join(rasters[:3]) if len(rasters) >= 3 else (rasters[0] if rasters else "KEY")
    return (
        f"item {item_id!r}: no RGB, pan or false-colour assets found; assets seen: "
        f"{'; '.join(seen) or 'none'}; pass --assets RED,GREEN,BLUE (three band assets) or "
        f"--assets KEY (one RGB asset), e.g. --assets {example}"
    )
