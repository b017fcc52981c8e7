"""Cut the shipped sample (geomelt/sample/) from the open-licence GeoTIFFs of ../shared/data/geo.

    python scripts/cut_sample.py [--geo ../shared/data/geo] [--out geomelt/sample]

Each sample file is a window of one source file (or, for Vienna, of the four adjacent tiles of
one orthophoto, which share one pixel grid) written as a COG with the source's CRS, pixel grid,
dtype, bands, nodata, band descriptions and tags: only the extent changes. Files small enough
to keep whole are copied byte for byte. The script then writes `manifest.json` (the
../shared/data/geo schema plus `source_file`, `window` and the new sha256) and `LICENSES.md`.

Left out: the Pix4D drone ortho (its terms are unclear, ../shared/data/geo/README.md) and the
300 m Landsat Bahamas scene (more than 4x coarser than the 30 m the model reads: ingestion
refuses it). Windows are multiples of the 224 px chip at native GSD; the coarse ones (90 m, 100
m) are small because ingestion resamples them to 30 m. The sample ingests to 60-90 chips
(quick on 2 CPU cores), and every chip shows something recognisable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.merge import merge
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GEO = ROOT.parent / "shared" / "data" / "geo"
DEFAULT_OUT = ROOT / "geomelt" / "sample"

VIENNA_TILES = tuple(
    f"vienna_ortho_2023_30cm_schoenbrunn_r{r}c{c}.tif" for r in (0, 1) for c in (0, 1)
)
NAIP_2012 = "naip_nd_20120731_m_4709963_se_14_5m.tif"
# The NAIP window, in the 2012 file's pixels: pothole lakes, wetlands and two kinds of fields.
NAIP_WINDOW = Window(448, 224, 448, 448)


@dataclass(frozen=True)
class Cut:
    """One sample file: `window` (col, row, width, height) of `source`, or the whole file."""

    out: str
    source: str | tuple[str, ...]
    window: Window | None
    title: str
    # Another file's window whose ground this one must cover (the same place at another date).
    same_ground_as: str | None = None


CUTS: tuple[Cut, ...] = (
    Cut(
        "usgs_hro_colorado_201404_15cm_residential.tif",
        "usgs_hro_colorado_201404_15cm_residential.tif",
        None,
        "USGS HRO, Colorado Springs area: residential cul-de-sac, houses, parked cars, trees",
    ),
    Cut(
        "vienna_ortho_2023_30cm_schoenbrunn_palace.tif",
        VIENNA_TILES,
        Window(564, 664, 672, 672),
        "Vienna orthophoto 2023, 30 cm: Schloss Schönbrunn palace, its forecourt and the "
        "formal parterre gardens behind it",
    ),
    Cut(
        "vienna_ortho_2023_30cm_schoenbrunn_courtyards.tif",
        VIENNA_TILES,
        Window(150, 150, 672, 448),
        "Vienna orthophoto 2023, 30 cm: palace wings around courtyards (red roofs), "
        "parked cars, lawns, the avenue north of Schönbrunn",
    ),
    Cut(
        "vienna_ortho_2023_30cm_schoenbrunn_park.tif",
        VIENNA_TILES,
        Window(0, 984, 448, 448),
        "Vienna orthophoto 2023, 30 cm: Schönbrunn palace park, woods cut by straight avenues",
    ),
    Cut(
        NAIP_2012,
        NAIP_2012,
        NAIP_WINDOW,
        "NAIP 2012, North Dakota: prairie pothole lakes, wetlands and farmland",
    ),
    Cut(
        "naip_nd_20200831_m_4709963_se_14_5m.tif",
        "naip_nd_20200831_m_4709963_se_14_5m.tif",
        None,
        "NAIP 2020, North Dakota: the same lakes, wetlands and farmland as the 2012 file",
        same_ground_as=NAIP_2012,
    ),
    Cut(
        "naip_nd_20160816_m_4709963_se_14_5m.tif",
        "naip_nd_20160816_m_4709963_se_14_5m.tif",
        None,
        "NAIP 2016, North Dakota: the same lakes, wetlands and farmland as the 2012 file",
        same_ground_as=NAIP_2012,
    ),
    Cut(
        "naip_nd_20090818_m_4709963_se_14_5m_3857.tif",
        "naip_nd_20090818_m_4709963_se_14_5m_3857.tif",
        None,
        "NAIP 2009, North Dakota (web mercator): the same lakes and farmland as the 2012 file",
        same_ground_as=NAIP_2012,
    ),
    Cut(
        "spacenet6_rotterdam_wv2_pan_50cm_port_quay.tif",
        "spacenet6_rotterdam_wv2_pan_50cm_port_quay.tif",
        Window(152, 152, 448, 448),
        "WorldView-2 pan, Port of Rotterdam: harbour quay, moored offshore vessel with a "
        "helideck, warehouses; the top half is outside the image strip (nodata)",
    ),
    Cut(
        "spacenet6_rotterdam_wv2_pan_50cm_industrial_tanks.tif",
        "spacenet6_rotterdam_wv2_pan_50cm_industrial_tanks.tif",
        Window(152, 152, 448, 448),
        "WorldView-2 pan, Port of Rotterdam: cylindrical storage tanks, warehouses, roads; "
        "the top is outside the image strip (nodata)",
    ),
    Cut(
        "spacenet6_rotterdam_wv2_pan_50cm_residential.tif",
        "spacenet6_rotterdam_wv2_pan_50cm_residential.tif",
        Window(76, 76, 448, 448),
        "WorldView-2 pan, Rotterdam: terraced housing, park, roundabout, streets",
    ),
    Cut(
        "spacenet4_atlanta_wv2_pan_50cm.tif",
        "spacenet4_atlanta_wv2_pan_50cm.tif",
        Window(226, 226, 448, 448),
        "WorldView-2 pan, Atlanta: wooded suburb, houses among trees, roads",
    ),
    Cut(
        "s2_demmin_20230603_10m_b04b03b02b08_4326.tif",
        "s2_demmin_20230603_10m_b04b03b02b08_4326.tif",
        Window(86, 9, 448, 224),
        "Sentinel-2, Demmin (Germany): large wheat fields, field margins, small woods",
    ),
    Cut(
        "s2_tci_34SGA_20200318_tobruk_libya_100m.tif",
        "s2_tci_34SGA_20200318_tobruk_libya_100m.tif",
        Window(560, 360, 168, 168),
        "Sentinel-2 true colour, Libyan coast near Tobruk: sea and clouds over the desert coast",
    ),
    Cut(
        "s2_barbellino_20170703_boa_10m_tiny.tif",
        "s2_barbellino_20170703_boa_10m_tiny.tif",
        None,
        "Sentinel-2 L2A, Lago del Barbellino (Italian Alps), 2017: 24 x 42 px, less than a chip",
    ),
    Cut(
        "s2_barbellino_20190723_boa_10m_tiny.tif",
        "s2_barbellino_20190723_boa_10m_tiny.tif",
        None,
        "Sentinel-2 L2A, Lago del Barbellino (Italian Alps), 2019: the same 24 x 42 px",
    ),
    Cut(
        "landsat_pucallpa_peru_1985_swir1-nir-red-green_4326.tif",
        "landsat_pucallpa_peru_1985_swir1-nir-red-green_4326.tif",
        Window(200, 60, 224, 224),
        "Landsat 1985, Pucallpa (Peru): Ucayali river meanders, oxbow lakes, rainforest",
    ),
    Cut(
        "landsat_pucallpa_peru_2020_swir1-nir-red-green_4326.tif",
        "landsat_pucallpa_peru_2020_swir1-nir-red-green_4326.tif",
        Window(200, 60, 224, 224),
        "Landsat 2020, Pucallpa (Peru): the same meanders; forest cleared for farmland",
    ),
    Cut(
        "landsat7_olinda_brazil_etm_6band_28m.tif",
        "landsat7_olinda_brazil_etm_6band_28m.tif",
        Window(125, 64, 224, 224),
        "Landsat 7 ETM+, Olinda/Recife (Brazil): dense city on the Atlantic coast",
    ),
)

# What a user of the sample must know per source licence (../shared/data/geo/README.md).
ATTRIBUTION = {
    "vienna": "CC BY 4.0. Attribution: \"Datenquelle: Stadt Wien – data.wien.gv.at\" "
    "(Orthofoto Wien 2023, tile 44_2). Cropped; pixels unchanged.",
    "naip": "Public domain: USDA Farm Service Agency, National Agriculture Imagery Program "
    "(resampled to 5 m upstream by opengeos/data, MIT).",
    "usgs_hro": "Public domain: USGS High Resolution Orthoimagery.",
    "landsat": "Public domain: Landsat imagery courtesy of the U.S. Geological Survey.",
    "s2": "Free and open Copernicus licence: \"Contains modified Copernicus Sentinel data "
    "{year}\".",
    "spacenet": "CC BY-SA 4.0: SpaceNet, imagery courtesy of Maxar Technologies (WorldView-2). "
    "Share-alike: redistributed derivatives (crops, chips, thumbnails) carry the same licence.",
}


def _licence_key(name: str) -> str:
    for key in ("vienna", "naip", "usgs_hro", "spacenet", "s2"):
        if name.startswith(key):
            return key
    return "landsat"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(geo: Path, cut: Cut, window: Window) -> tuple[np.ndarray, dict[str, Any], Path]:
    """Pixels of `window`, the profile of the (first) source, and that source's path."""
    sources = [cut.source] if isinstance(cut.source, str) else list(cut.source)
    first = geo / sources[0]
    with rasterio.open(first) as src:
        profile = src.profile.copy()
        transform = src.transform
        if len(sources) == 1:
            data = src.read(window=window)
            return data, {**profile, "transform": src.window_transform(window)}, first
    # Adjacent tiles on one grid: the window is in the pixels of the mosaic, whose origin is
    # the first (north-west) tile's; merge() only copies pixels, it resamples nothing.
    left, top = transform * (window.col_off, window.row_off)
    right, bottom = transform * (window.col_off + window.width, window.row_off + window.height)
    data, mosaic_transform = merge(
        [str(geo / s) for s in sources], bounds=(left, bottom, right, top), res=transform.a
    )
    if data.shape[1:] != (window.height, window.width):
        raise ValueError(f"{cut.out}: mosaic is {data.shape[1:]}, expected {window}")
    return data, {**profile, "transform": mosaic_transform}, first


def _window(geo: Path, cut: Cut) -> Window:
    if cut.window is not None:
        return cut.window
    if cut.same_ground_as is None:
        with rasterio.open(geo / str(cut.source)) as src:
            return Window(0, 0, src.width, src.height)
    # The same ground as another cut: its bounds, carried into this file's CRS and pixel grid.
    reference = next(c for c in CUTS if c.out == cut.same_ground_as)
    with rasterio.open(geo / str(reference.source)) as ref:
        bounds = ref.window_bounds(_window(geo, reference))
        crs = ref.crs
    with rasterio.open(geo / str(cut.source)) as src:
        own = transform_bounds(crs, src.crs, *bounds)
        window = from_bounds(*own, transform=src.transform)
    # The reference's size in pixels around the same centre: every date has the same chips
    # (the pixels cover the same ground size: 7.33 m of web mercator is 5 m at 47 degrees N).
    width, height = _window(geo, reference).width, _window(geo, reference).height
    col = round(window.col_off + (window.width - width) / 2)
    row = round(window.row_off + (window.height - height) / 2)
    return Window(col, row, width, height)


def write_cut(geo: Path, out: Path, cut: Cut) -> Window:
    target = out / cut.out
    window = _window(geo, cut)
    if cut.window is None and cut.same_ground_as is None:
        shutil.copyfile(geo / str(cut.source), target)  # whole file: byte for byte
        return window
    data, profile, first = _read(geo, cut, window)
    with rasterio.open(first) as src:
        descriptions, colorinterp, tags = src.descriptions, src.colorinterp, src.tags()
        band_tags = [src.tags(i) for i in range(1, src.count + 1)]
    profile.update(
        driver="COG",
        width=window.width,
        height=window.height,
        compress="deflate",
        predictor=2,
        blocksize=512,
        overview_resampling="average",
    )
    for key in ("blockxsize", "blockysize", "tiled", "interleave"):
        profile.pop(key, None)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
        dst.colorinterp = colorinterp
        for index, text in enumerate(descriptions, start=1):
            if text:
                dst.set_band_description(index, text)
        dst.update_tags(**{k: v for k, v in tags.items() if not k.startswith("TIFFTAG_")})
        for index, extra in enumerate(band_tags, start=1):
            dst.update_tags(index, **extra)
    return window


def _entry(out: Path, cut: Cut, window: Window, shared: dict[str, Any]) -> dict[str, Any]:
    first = cut.source if isinstance(cut.source, str) else cut.source[0]
    entry = dict(shared[first])
    path = out / cut.out
    with rasterio.open(path) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        entry.update(
            file=cut.out,
            title=cut.title,
            width=src.width,
            height=src.height,
            bbox_native=[round(v, 4) for v in src.bounds],
            bbox_wgs84=[round(v, 6) for v in (west, south, east, north)],
        )
    whole = cut.window is None and cut.same_ground_as is None
    entry["source_file"] = list(cut.source) if isinstance(cut.source, tuple) else cut.source
    entry["window"] = {
        "col_off": int(window.col_off),
        "row_off": int(window.row_off),
        "width": int(window.width),
        "height": int(window.height),
        **({"of": "mosaic of source_file (north-west tile's pixel grid)"} if not
           isinstance(cut.source, str) else {}),
    }
    entry["edits"] = (
        "none: byte-for-byte copy of the shared file"
        if whole
        else "window cut by scripts/cut_sample.py (CRS, pixel grid, dtype, bands, nodata kept); "
        "COG DEFLATE predictor 2. Upstream edits: " + shared[first]["edits"]
    )
    entry["sha256"] = sha256(path)
    entry["size_bytes"] = path.stat().st_size
    return entry


def _licences(entries: list[dict[str, Any]]) -> str:
    lines = [
        "# Licences and attribution of the shipped sample",
        "",
        "Every file is a crop of an openly licensed GeoTIFF, cut by `scripts/cut_sample.py` from",
        "the project's collection (see `manifest.json` for source repository, commit and window).",
        "The project's MIT licence covers the code, not these images.",
        "",
        "| file | licence and attribution | original provider | via |",
        "|---|---|---|---|",
    ]
    for entry in entries:
        key = _licence_key(entry["file"])
        text = ATTRIBUTION[key].format(year=(entry.get("datetime") or "")[:4])
        source = entry["source"]
        via = f"`{source['repo']}` `{source['path']}` @ `{source['commit'][:10]}`"
        lines.append(f"| `{entry['file']}` | {text} | {entry['provider']} | {via} |")
    lines += [
        "",
        "Attribution lines for a map or a publication:",
        "",
        "* Orthofoto Wien 2023: \"Datenquelle: Stadt Wien – data.wien.gv.at\" (CC BY 4.0)",
        "* NAIP: USDA Farm Service Agency, National Agriculture Imagery Program (public domain)",
        "* USGS High Resolution Orthoimagery (public domain); Landsat imagery courtesy of the "
        "U.S. Geological Survey",
        "* \"Contains modified Copernicus Sentinel data 2017, 2019, 2020, 2023\"",
        "* SpaceNet (CC BY-SA 4.0), imagery courtesy of Maxar Technologies (WorldView-2)",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geo", type=Path, default=DEFAULT_GEO)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    shared = {e["file"]: e for e in json.loads((args.geo / "manifest.json").read_text())}
    args.out.mkdir(parents=True, exist_ok=True)
    entries = []
    for cut in CUTS:
        window = write_cut(args.geo, args.out, cut)
        entries.append(_entry(args.out, cut, window, shared))
        size = entries[-1]["size_bytes"]
        print(f"{cut.out}: {window.width}x{window.height} px, {size} bytes")  # noqa: T201
    text = json.dumps(entries, indent=2, ensure_ascii=False) + "\n"
    (args.out / "manifest.json").write_text(text)
    (args.out / "LICENSES.md").write_text(_licences(entries))
    total = sum(e["size_bytes"] for e in entries)
    print(f"{len(entries)} files, {total / 1e6:.1f} MB in {args.out}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
