"""STAC items in the shapes five real catalogs publish, over test COGs from the shipped sample.

Each builder copies the asset keys, roles, media types and band metadata (`eo:bands`, STAC 1.1
`bands`, `raster:bands`) of that catalog's published example items; the hrefs point at COGs cut
from the sample files (served by a Range server). The automatic asset choice must read each of
them with no --assets:

- earth-search `sentinel-2-l2a` (v1): single-band reflectance COGs `red`, `green`, `blue`, `nir`
  (uint16, scale 0.0001, offset -0.1, nodata 0), their JPEG 2000 twins `red-jp2`..., a 3-band
  `visual` TCI, `scl`, a JPEG `thumbnail` and XML metadata;
- Planetary Computer `landsat-c2-l2`: `red`, `green`, `blue`, `nir08` named by `eo:bands`
  (OLI_B4, ...), uint16 with scale 2.75e-05 and offset -0.2, a PNG `rendered_preview`;
- Planetary Computer `naip`: one 4-band `image` asset (roles `data`), `eo:bands` Red, Green, Blue,
  NIR with common names;
- Maxar Open Data: `visual` (roles `visual`), an 8-band `ms_analytic`, `pan_analytic`, a
  GeoPackage `data-mask`;
- a drone orthomosaic (OpenDroneMap / OpenAerialMap style, STAC 1.1): one RGBA COG `ortho` whose
  `bands` name red, green, blue (`eo:common_name`) and alpha.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.warp import transform_bounds

from geomelt.workers.local import write_band_cog

from ..sample_data import SAMPLE_DIR, write_rgba

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
COLLECTION = "catalog-shapes"

# Landsat C2 L2 surface reflectance = DN * 2.75e-05 - 0.2 (USGS); Sentinel-2 L2A (baseline
# 04.00+) = DN * 0.0001 - 0.1 as earth-search publishes it.
LANDSAT_SCALE, LANDSAT_OFFSET = 2.75e-05, -0.2
S2_SCALE, S2_OFFSET = 0.0001, -0.1


def _footprint(path: Path) -> tuple[dict[str, Any], list[float], dict[str, Any]]:
    with rasterio.open(path) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        projection = {
            "proj:code": f"EPSG:{src.crs.to_epsg()}",
            "proj:shape": [src.height, src.width],
            "proj:transform": list(src.transform)[:6],
        }
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}, [west, south, east, north], projection


def _item(
    item_id: str, path: Path, datetime: str, assets: dict[str, Any], **properties: Any
) -> dict[str, Any]:
    geometry, bbox, projection = _footprint(path)
    return {
        "type": "Feature",
        "stac_version": "1.1.0" if item_id.startswith("drone") else "1.0.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": COLLECTION,
        "geometry": geometry,
        "bbox": bbox,
        "properties": {"datetime": datetime, **projection, **properties},
        "links": [],
        "assets": assets,
    }


def _band_cog(source: Path, band: int, target: Path, convert: Callable[[Any], Any] | None) -> None:
    if target.exists():
        return
    write_band_cog(source, band, target)
    if convert is None:
        return
    with rasterio.open(target) as src:
        profile, data = src.profile.copy(), src.read(1)
    profile.update(dtype="uint16", nodata=0)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(convert(data).astype(np.uint16), 1)


def sentinel2_l2a(data_dir: Path, base_url: str) -> dict[str, Any]:
    source = SAMPLE_DIR / "s2_barbellino_20170703_boa_10m_tiny.tif"
    assets: dict[str, Any] = {}
    for key, band, wavelength in (("blue", 2, 0.49), ("green", 3, 0.56), ("red", 4, 0.665)):
        target = data_dir / f"S2A_32TNS_20170703_{key}.tif"
        # BOA values of the 2017 file (no offset) shifted into the baseline-04.00 encoding.
        _band_cog(source, band, target, lambda dn: np.where(dn == 65535, 0, dn + 1000))
        eo = [{"name": key, "common_name": key, "center_wavelength": wavelength}]
        raster = [
            {
                "nodata": 0,
                "data_type": "uint16",
                "bits_per_sample": 15,
                "spatial_resolution": 10,
                "scale": S2_SCALE,
                "offset": S2_OFFSET,
            }
        ]
        assets[key] = {
            "href": f"{base_url}/{target.name}",
            "type": COG,
            "title": f"{key.capitalize()} (band {band}) - 10m",
            "eo:bands": eo,
            "raster:bands": raster,
            "roles": ["data", "reflectance"],
        }
        assets[f"{key}-jp2"] = {
            **assets[key],
            "href": f"{base_url}/missing/{target.stem}.jp2",
            "type": "image/jp2",
        }
    assets["visual"] = {
        "href": f"{base_url}/missing/TCI.tif",
        "type": COG,
        "title": "True color image",
        "eo:bands": [{"name": n, "common_name": n} for n in ("red", "green", "blue")],
        "roles": ["visual"],
    }
    assets["thumbnail"] = {
        "href": f"{base_url}/missing/preview.jpg",
        "type": "image/jpeg",
        "roles": ["thumbnail"],
    }
    assets["granule_metadata"] = {
        "href": f"{base_url}/missing/metadata.xml",
        "type": "application/xml",
        "roles": ["metadata"],
    }
    return _item(
        "S2A_32TNS_20170703_0_L2A",
        source,
        "2017-07-03T10:20:21Z",
        assets,
        platform="sentinel-2a",
        constellation="sentinel-2",
        **{"eo:cloud_cover": 3.1, "s2:processing_baseline": "04.00"},
    )


def landsat_c2_l2(data_dir: Path, base_url: str) -> dict[str, Any]:
    source = SAMPLE_DIR / "landsat7_olinda_brazil_etm_6band_28m.tif"
    assets: dict[str, Any] = {}
    bands = (("blue", 1, "B1"), ("green", 2, "B2"), ("red", 3, "B3"), ("nir08", 4, "B4"))
    for key, band, name in bands:
        target = data_dir / f"LE07_214065_{name}.tif"

        def to_level2(dn: Any) -> Any:
            # DN 0..255 read as reflectance 0..0.3, stored in the C2 L2 encoding.
            return (dn / 255.0 * 0.3 - LANDSAT_OFFSET) / LANDSAT_SCALE

        _band_cog(source, band, target, to_level2)
        common = "nir08" if key == "nir08" else key
        assets[key] = {
            "href": f"{base_url}/{target.name}",
            "type": COG,
            "title": f"{key} band",
            "roles": ["data"],
            "eo:bands": [{"name": f"ETM_{name}", "common_name": common}],
            "raster:bands": [
                {
                    "scale": LANDSAT_SCALE,
                    "offset": LANDSAT_OFFSET,
                    "nodata": 0,
                    "data_type": "uint16",
                    "unit": "reflectance",
                }
            ],
        }
    assets["rendered_preview"] = {
        "href": f"{base_url}/missing/preview.png",
        "type": "image/png",
        "roles": ["overview"],
    }
    return _item(
        "LE07_L2SP_214065_20000526_02_T1",
        source,
        "2000-05-26T12:23:41Z",
        assets,
        platform="landsat-7",
        instruments=["etm+"],
    )


def naip(data_dir: Path, base_url: str) -> dict[str, Any]:
    source = SAMPLE_DIR / "naip_nd_20200831_m_4709963_se_14_5m.tif"
    link = data_dir / source.name
    if not link.exists():
        link.symlink_to(source)
    names = (("Red", "red"), ("Green", "green"), ("Blue", "blue"), ("NIR", "nir"))
    assets = {
        "image": {
            "href": f"{base_url}/{source.name}",
            "type": COG,
            "roles": ["data"],
            "title": "RGBIR COG tile",
            "eo:bands": [{"name": n, "common_name": c} for n, c in names],
        },
        "thumbnail": {
            "href": f"{base_url}/missing/thumb.jpg",
            "type": "image/jpeg",
            "roles": ["thumbnail"],
        },
        "tilejson": {
            "href": f"{base_url}/missing/tilejson.json",
            "type": "application/json",
            "roles": ["tiles"],
        },
    }
    return _item("nd_m_4709963_se_14_060_20200831", source, "2020-08-31T16:00:00Z", assets, gsd=0.6)


def maxar_open_data(data_dir: Path, base_url: str) -> dict[str, Any]:
    source = SAMPLE_DIR / "usgs_hro_colorado_201404_15cm_residential.tif"
    link = data_dir / source.name
    if not link.exists():
        link.symlink_to(source)
    ms = ("coastal", "blue", "green", "yellow", "red", "rededge", "nir", "nir09")
    assets = {
        "visual": {
            "href": f"{base_url}/{source.name}",
            "type": COG,
            "title": "Visual Image",
            "roles": ["visual"],
        },
        "ms_analytic": {
            "href": f"{base_url}/missing/ms_analytic.tif",
            "type": COG,
            "title": "Multispectral Image",
            "roles": ["data"],
            "eo:bands": [{"name": f"BAND_{n.upper()}", "common_name": n} for n in ms],
        },
        "pan_analytic": {
            "href": f"{base_url}/missing/pan_analytic.tif",
            "type": COG,
            "title": "Panchromatic Image",
            "roles": ["data"],
            "eo:bands": [{"name": "BAND_P", "common_name": "pan"}],
        },
        "data-mask": {
            "href": f"{base_url}/missing/data-mask.gpkg",
            "type": "application/geopackage+sqlite3",
            "roles": ["data-mask"],
        },
    }
    return _item("10300100CF4B1B00-visual", source, "2014-04-01T17:50:00Z", assets, gsd=0.15)


def drone_ortho(data_dir: Path, base_url: str) -> dict[str, Any]:
    source = write_rgba(data_dir)  # the sample's Vienna crop with an alpha footprint
    bands = [
        {"name": n, "eo:common_name": n, "data_type": "uint8"} for n in ("red", "green", "blue")
    ]
    assets = {
        "ortho": {
            "href": f"{base_url}/{source.name}",
            "type": COG,
            "roles": ["data"],
            "title": "Orthomosaic (RGBA)",
            "bands": [*bands, {"name": "alpha", "data_type": "uint8"}],
        }
    }
    return _item("drone-ortho-rgba", source, "2023-06-01T09:00:00Z", assets, gsd=0.3)


SHAPES: dict[str, Callable[[Path, str], dict[str, Any]]] = {
    "earth-search sentinel-2-l2a": sentinel2_l2a,
    "planetary-computer landsat-c2-l2": landsat_c2_l2,
    "planetary-computer naip": naip,
    "maxar open data": maxar_open_data,
    "drone ortho with alpha": drone_ortho,
}
# What the automatic choice must read from each: (asset keys, bands, kind).
EXPECTED = {
    "earth-search sentinel-2-l2a": (("red", "green", "blue"), (1, 1, 1), "rgb"),
    "planetary-computer landsat-c2-l2": (("red", "green", "blue"), (1, 1, 1), "rgb"),
    "planetary-computer naip": (("image",), (1, 2, 3), "rgb"),
    "maxar open data": (("visual",), (1, 2, 3), "rgb"),
    "drone ortho with alpha": (("ortho",), (1, 2, 3), "rgb"),
}
