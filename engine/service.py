"""The search service: one transaction per search, from validated parameters to page rows.

Owned by the app's lifespan together with the database engine and the model.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlalchemy import Connection, Engine, select

from geomelt.db import unit_of_work
from geomelt.db.models import Scene
from geomelt.db.queries.lookups import (
    chip_embeddings,
    chip_thumbnail,
    collection_summaries,
    find_model_id,
    resolve_item_ids,
)
from geomelt.db.queries.pages import Ranked, SortKey, page_select, sort_key, sort_values
from geomelt.db.queries.search import (
    count_matches,
    estimate_matches,
    keyword_ranks,
    planned_neighbours,
)
from geomelt.db.queries.where import Filters, where_clauses
from geomelt.db.replicas import ReadRouter, ReadSource

from .config import EngineConfig
from .errors import InvalidParameter, PayloadTooLarge, UnsupportedMediaType
from .params import SearchRequest
from .ranking import normalise, reciprocal_rank_fusion, rocchio
from .tokens import decode_token, encode_token, fingerprint

__all__ = ["SearchResult", "SearchService"]

_CACHE_SIZE = 1024
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


@dataclass
class SearchResult:
    rows: list[Any]
    rank_offset: int
    next_token: str | None
    number_matched: int | None
    info: dict[str, Any] | None = None
    ranked: bool = False
    # Response headers: which database served the read, and replicas passed over (why).
    headers: dict[str, str] = field(default_factory=dict)


class _Lru:
    def __init__(self, size: int) -> None:
        self._items: OrderedDict[str, np.ndarray[Any, Any]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray[Any, Any] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: np.ndarray[Any, Any]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class SearchService:
    def __init__(
        self, engine: Engine, model: Any, config: EngineConfig, reads: ReadRouter | None = None
    ) -> None:
        self.engine = engine
        # Searches go through it (to replicas when configured); other reads and all writes use
        # `engine`, the primary.
        self.reads = reads or ReadRouter(engine, (), max_lag_s=config.max_replica_lag_s)
        self.model = model
        self.config = config
        self._text_vectors = _Lru(_CACHE_SIZE)
        self._image_vectors = _Lru(_CACHE_SIZE)
        self._model_id: int | None = None

    @property
    def model_label(self) -> str:
        return str(self.model.version)

    def model_id(self, connection: Connection) -> int | None:
        """The id of the loaded model's rows (looked up until a worker has registered it)."""
        if self._model_id is None:
            self._model_id = find_model_id(connection, sha256=self.model.sha256)
        return self._model_id

    def collections(self, collection: str | None = None) -> list[Any]:
        with unit_of_work(self.engine) as connection:
            model_id = self.model_id(connection)
            if model_id is None:
                return []
            return collection_summaries(connection, model_id=model_id, collection=collection)

    def scene(self, collection: str, item_id: str) -> dict[str, Any] | None:
        """The stored source item of a scene (the first source's, if several hold it)."""
        with unit_of_work(self.engine) as connection:
            item = connection.execute(
                select(Scene.item)
                .where(Scene.collection == collection, Scene.item_id == item_id)
                .order_by(Scene.id)
                .limit(1)
            ).scalar_one_or_none()
        return cast(dict[str, Any] | None, item)

    def thumbnail(self, collection: str, item_id: str) -> tuple[bytes, str] | None:
        with unit_of_work(self.engine) as connection:
            model_id = self.model_id(connection)
            if model_id is None:
                return None
            return chip_thumbnail(
                connection, model_id=model_id, collection=collection, item_id=item_id
            )

    def search(self, request: SearchRequest) -> SearchResult:
        query_fingerprint = fingerprint(request.fingerprint_source())
        after, returned = None, 0
        if request.token:
            after, returned = decode_token(
                self.config.secret,
                request.token,
                query_fingerprint=query_fingerprint,
                ttl_s=self.config.token_ttl_s,
            )
        # Read-only: runs on a fit replica when there are any (db.replicas); a page token holds
        # only sort keys, so the next page may come from another replica or the primary.
        page, source = self.reads.run(lambda connection: self._page(connection, request, after))
        headers = _read_headers(source) if self.reads.has_replicas else {}
        if page is None:
            return SearchResult([], returned, None, 0, ranked=request.ranked, headers=headers)
        rows, sort, matched, info, ranked = page
        next_token = None
        if len(rows) > request.limit:
            rows = rows[: request.limit]
            next_token = encode_token(
                self.config.secret,
                keys=sort_values(rows[-1], len(sort)),
                query_fingerprint=query_fingerprint,
                returned=returned + len(rows),
            )
        return SearchResult(
            rows, returned, next_token, matched, info, ranked=ranked is not None, headers=headers
        )

    def _page(
        self, connection: Connection, request: SearchRequest, after: Any
    ) -> tuple[list[Any], list[SortKey], int | None, dict[str, Any] | None, Ranked | None] | None:
        """One page's rows (and one more, to know if there is a next page), or None while no
        worker has registered the loaded model."""
        model_id = self.model_id(connection)
        if model_id is None:
            return None
        excluded: tuple[int, ...] = ()
        positives: dict[str, int] = {}
        if request.similar_to:
            positives = resolve_item_ids(
                connection, request.similar_to, model_id=model_id, parameter="similar_to"
            )
            excluded = tuple(positives.values())
        filters = _filters(request, model_id, excluded)
        where = where_clauses(filters)
        ranked, info = None, None
        if request.ranked:
            vector = self._query_vector(connection, request, model_id, positives)
            ranked, info = self._rank(connection, filters, where, request, vector)
        sort = _sort_keys(request, ranked=ranked is not None)
        statement = page_select(where, sort, after=after, limit=request.limit + 1, ranked=ranked)
        rows = list(connection.execute(statement))
        matched = len(ranked.chip_ids) if ranked else self._number_matched(connection, where)
        return rows, sort, matched, info, ranked

    def _number_matched(self, connection: Connection, where: list[Any]) -> int | None:
        if estimate_matches(connection, where) >= self.config.count_threshold:
            return None
        return count_matches(connection, where)

    def _rank(
        self,
        connection: Connection,
        filters: Filters,
        where: list[Any],
        request: SearchRequest,
        vector: np.ndarray[Any, Any],
    ) -> tuple[Ranked, dict[str, Any]]:
        depth = self.config.rank_depth
        dim = int(vector.shape[0])
        neighbours, plan = planned_neighbours(
            connection,
            filters,
            vector,
            dim=dim,
            depth=depth,
            exact_threshold=self.config.exact_threshold,
        )
        keyword = (
            keyword_ranks(connection, where, request.q_phrases, depth=depth) if request.q else []
        )
        fused = reciprocal_rank_fusion(
            [[chip for chip, _ in neighbours], [chip for chip, _ in keyword]], k=self.config.rrf_k
        )
        text_ranks = dict(keyword)
        ranked = Ranked(
            chip_ids=[chip for chip, _ in fused],
            scores=[score for _, score in fused],
            text_ranks=[text_ranks.get(chip) for chip, _ in fused],
            query_vector=vector,
            dim=dim,
        )
        info: dict[str, Any] = {
            **plan.info(),
            "model": self.model_label,
            "fusion": f"rrf(k={self.config.rrf_k})" if request.q else "vector",
            "depth": depth,
        }
        return ranked, info

    def _query_vector(
        self,
        connection: Connection,
        request: SearchRequest,
        model_id: int,
        positives: dict[str, int],
    ) -> np.ndarray[Any, Any]:
        beta = self.config.rocchio_beta
        examples: list[np.ndarray[Any, Any]] = []
        if positives:
            examples.extend(chip_embeddings(connection, list(positives.values())))
        if request.image_ref:
            image_vector = self._image_vectors.get(request.image_ref)
            if image_vector is None:
                raise InvalidParameter("image_ref: unknown or expired; upload the image again")
            examples.append(image_vector)
        negatives = None
        if request.negative:
            chip_ids = resolve_item_ids(
                connection, request.negative, model_id=model_id, parameter="negative"
            )
            negatives = chip_embeddings(connection, list(chip_ids.values()))
        try:
            if request.q and examples:
                text = self._text_vector(request.q)
                examples_mean = np.mean([normalise(v) for v in examples], axis=0)
                alpha = self.config.q_alpha
                combined = normalise(alpha * text + (1 - alpha) * examples_mean)
                return rocchio(combined[None, :], negatives, beta=beta)
            if request.q:
                return rocchio(self._text_vector(request.q)[None, :], negatives, beta=beta)
            return rocchio(np.stack(examples), negatives, beta=beta)
        except ValueError as exc:
            raise InvalidParameter(f"negative: {exc}") from exc

    def _text_vector(self, text: str) -> np.ndarray[Any, Any]:
        key = hashlib.sha256(text.encode()).hexdigest()
        vector = self._text_vectors.get(key)
        if vector is None:
            vector = np.asarray(self.model.encode_queries([text])[0], dtype=np.float32)
            self._text_vectors.put(key, vector)
        return vector

    def embed_upload(self, data: bytes) -> str:
        """Embed an uploaded PNG/JPEG/GeoTIFF; returns the image_ref under which its vector is
        kept."""
        if len(data) > self.config.max_upload_bytes:
            raise PayloadTooLarge(
                f"file: {len(data)} bytes, more than {self.config.max_upload_bytes} allowed"
            )
        if data[:4] in _TIFF_MAGIC:
            pixels = _decode_geotiff(data, self.config.max_image_pixels)
        else:
            pixels = _decode_image(data, self.config.max_image_pixels)
        reference = hashlib.sha256(data).hexdigest()[:32]
        if self._image_vectors.get(reference) is None:
            # The upload is captioned as the workers caption chips: fused vectors include it.
            captions = self.model.caption(pixels[None])
            vector = np.asarray(
                self.model.search_vectors(pixels[None], captions)[0], dtype=np.float32
            )
            self._image_vectors.put(reference, vector)
        return reference


def _decode_image(data: bytes, max_pixels: int) -> np.ndarray[Any, Any]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise UnsupportedMediaType(
                    f"file: {image.format} images are not supported; send a PNG or JPEG"
                )
            width, height = image.size
            if width * height > max_pixels:
                raise PayloadTooLarge(
                    f"file: {width}x{height} pixels, more than {max_pixels} allowed"
                )
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise UnsupportedMediaType("file: not a readable PNG or JPEG image") from exc


# Side of the longest edge a GeoTIFF upload is read at: the model sees 224 px anyway, and
# reading a decimated view (from overviews where the file has them) bounds memory and time.
_GEOTIFF_READ_PX = 1024


def _decode_geotiff(data: bytes, max_pixels: int) -> np.ndarray[Any, Any]:
    """RGB uint8 of a (Geo)TIFF: bands by colour interpretation, else the first three (or one
    band as grey); non-uint8 data stretched between its 2nd and 98th percentiles."""
    from rasterio.enums import ColorInterp
    from rasterio.errors import RasterioError
    from rasterio.io import MemoryFile

    try:
        with MemoryFile(data) as memory, memory.open() as dataset:
            if dataset.width * dataset.height > max_pixels * 64:
                raise PayloadTooLarge(
                    f"file: {dataset.width}x{dataset.height} pixels, more than "
                    f"{max_pixels * 64} allowed for a GeoTIFF"
                )
            interp = list(dataset.colorinterp)
            wanted = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
            if all(colour in interp for colour in wanted):
                bands = [interp.index(colour) + 1 for colour in wanted]
            elif dataset.count >= 3:
                bands = [1, 2, 3]
            else:
                bands = [1, 1, 1]
            scale = min(1.0, _GEOTIFF_READ_PX / max(dataset.width, dataset.height))
            shape = (3, max(1, round(dataset.height * scale)), max(1, round(dataset.width * scale)))
            array = dataset.read(bands, out_shape=shape, masked=True)
    except RasterioError as exc:
        raise UnsupportedMediaType(
            "file: not a readable GeoTIFF (corrupt or truncated?); send a valid GeoTIFF, "
            "PNG or JPEG"
        ) from exc
    valid = array.compressed() if np.ma.is_masked(array) else np.asarray(array).ravel()
    if valid.size == 0:
        raise InvalidParameter("file: the GeoTIFF holds no valid pixels (all nodata)")
    if array.dtype == np.uint8:
        rgb = np.ma.filled(array, 0).astype(np.uint8)
    else:
        low, high = np.percentile(valid.astype(np.float64), [2, 98])
        stretched = (np.ma.filled(array, low).astype(np.float64) - low) / max(high - low, 1e-9)
        rgb = np.clip(stretched * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.transpose(rgb, (1, 2, 0))  # (H, W, 3)


def _read_headers(source: ReadSource) -> dict[str, str]:
    headers = {"X-Read-Source": source.name}
    if source.skipped:
        headers["X-Replicas-Skipped"] = "; ".join(source.skipped)
    return headers


def _filters(request: SearchRequest, model_id: int, excluded: tuple[int, ...]) -> Filters:
    return Filters(
        model_id=model_id,
        collections=request.collections,
        ids=request.ids,
        bbox=request.bbox,
        intersects=request.intersects,
        datetime_start=request.datetime_start,
        datetime_end=request.datetime_end,
        cql2=request.filter,
        exclude_chip_ids=excluded,
    )


def _sort_keys(request: SearchRequest, *, ranked: bool) -> list[SortKey]:
    if request.sortby:
        return [
            SortKey(sort_key(name, ranked=ranked).field, descending)
            for name, descending in request.sortby
        ]
    if ranked:
        return [SortKey("search:score", True)]
    return [SortKey("datetime", True)]
