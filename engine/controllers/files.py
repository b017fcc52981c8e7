"""The files of collections ingested from a local folder, with HTTP Range (COG reads).

Chip and scene items of such a collection point here (`/files/{collection}/{name}`), so their
links stay valid after the ingest's temporary file server is gone and across restarts. Only the
folders the entry point registered are served (`EngineConfig.local_files`), and only plain file
names directly in them: never a path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import rasterio
from litestar import Controller, Request, Response, get, head
from litestar.response import File

from ...db.parsing import InvalidValue, byte_range
from ..errors import ApiError, ItemNotFound

__all__ = ["FilesController"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
TIFF = "image/tiff; application=geotiff"
# One range request at most this many bytes, so a request cannot hold the whole file in memory.
MAX_RANGE_BYTES = 64 * 1024 * 1024


class RangeNotSatisfiable(ApiError):
    """The Range header asks for bytes beyond the end of the file."""

    status_code = 416
    code = "RangeNotSatisfiable"


_BAND_VRT = re.compile(r"(.+)\.b([1-9][0-9]{0,3})\.vrt")
_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


def _band_vrt(path: Path, band: int) -> bytes:
    """A single-band GDAL VRT of band `band` of `path`, which lies beside it (relative path).

    stackstac reads only single-band assets; chips of a local multi-band file list one of
    these per chosen band.
    """
    with rasterio.open(path) as src:
        if band > src.count or src.dtypes[band - 1] not in _GDAL_TYPES:
            raise ItemNotFound(f"file {path.name}: has no band {band} GDAL can describe")
        a, b, c, d, e, f = tuple(src.transform)[:6]
        nodata = src.nodatavals[band - 1]
        crs = escape(src.crs.to_wkt()) if src.crs else ""
        dtype = _GDAL_TYPES[src.dtypes[band - 1]]
        width, height = src.width, src.height
    nodata_xml = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{crs}</SRS><GeoTransform>{c!r}, {a!r}, {b!r}, {f!r}, {d!r}, {e!r}</GeoTransform>"
        f'<VRTRasterBand dataType="{dtype}" band="1">{nodata_xml}<SimpleSource>'
        f'<SourceFilename relativeToVRT="1">{escape(path.name)}</SourceFilename>'
        f"<SourceBand>{band}</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
    ).encode()


def _content(request: Request[Any, Any, Any], collection_id: str, name: str) -> Path | bytes:
    """The file, or the generated single-band VRT a `NAME.bN.vrt` asks for."""
    vrt = _BAND_VRT.fullmatch(name)
    if vrt is not None:
        return _band_vrt(_path(request, collection_id, vrt.group(1)), int(vrt.group(2)))
    return _path(request, collection_id, name)


def _path(request: Request[Any, Any, Any], collection_id: str, name: str) -> Path:
    folders = request.app.state.config.local_files
    folder = folders.get(collection_id)
    if folder is None or not _NAME.fullmatch(name):
        raise ItemNotFound(f"file {collection_id}/{name}: no such file of a local collection")
    path = Path(folder) / name
    if not path.is_file():
        raise ItemNotFound(f"file {collection_id}/{name}: not found in the collection's folder")
    return path


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range, or None for the whole file."""
    try:
        span = byte_range(header, size)
    except InvalidValue as exc:
        raise RangeNotSatisfiable(str(exc)) from exc
    if span is None:
        return None
    first, last = span
    return first, min(last, first + MAX_RANGE_BYTES - 1)


class FilesController(Controller):
    path = "/files"
    tags = ("Files",)

    @get(
        "/{collection_id:str}/{name:str}",
        summary="A file of a local collection",
        sync_to_thread=True,
        description="The GeoTIFF/COG an asset of a locally ingested collection points to; "
        "single byte ranges (`Range: bytes=a-b`) answer 206, as COG readers need.",
    )
    def read(self, request: Request[Any, Any, Any], collection_id: str, name: str) -> Response[Any]:
        found = _content(request, collection_id, name)
        if isinstance(found, bytes):
            vrt_span = _range(request.headers.get("range"), len(found))
            if vrt_span is None:
                return Response(found, media_type="application/xml")
            first, last = vrt_span
            headers = {
                "Content-Range": f"bytes {first}-{last}/{len(found)}",
                "Accept-Ranges": "bytes",
            }
            return Response(
                found[first : last + 1],
                status_code=206,
                media_type="application/xml",
                headers=headers,
            )
        path = found
        size = path.stat().st_size
        span = _range(request.headers.get("range"), size)
        if span is None:
            return File(path, filename=name, content_disposition_type="inline", media_type=TIFF)
        first, last = span
        with path.open("rb") as handle:
            handle.seek(first)
            content = handle.read(last - first + 1)
        headers = {"Content-Range": f"bytes {first}-{last}/{size}", "Accept-Ranges": "bytes"}
        return Response(content, status_code=206, media_type=TIFF, headers=headers)

    @head("/{collection_id:str}/{name:str}", include_in_schema=False, sync_to_thread=True)
    def size(
        self, request: Request[Any, Any, Any], collection_id: str, name: str
    ) -> Response[None]:
        found = _content(request, collection_id, name)
        size = len(found) if isinstance(found, bytes) else found.stat().st_size
        headers = {"Content-Length": str(size), "Accept-Ranges": "bytes"}
        # An empty body (Litestar cannot render None as image/tiff); HEAD handlers are typed
        # Response[None].
        return Response(b"", media_type=TIFF, headers=headers)  # type: ignore[arg-type]
