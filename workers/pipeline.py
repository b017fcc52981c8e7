"""Ingesting one scene: read -> chip -> caption + embed -> store, with explicit scene states.

Chips are cells of the ground grid (workers/grid.py, docs/GRID.md): the scene is resampled into
the UTM zone of its centre at the GSD level nearest its own (0.3-30 m, what the model was
trained on), and every cell it touches is cut whole. A cell at the scene's edge is padded with
nodata, its `valid_fraction` counts only the scene's valid pixels, and cells below
`min_valid_fraction` are dropped (counted as skipped): no partial chip is indexed as if whole.

States: pending -> chipping (reading and cutting) -> embedding (model batches stored as they
finish) -> done, or failed with the reason; every attempt counts in `attempts`. A scene that is
done is left alone, so a re-run of its job changes nothing; a re-run after a crash repeats the
scene and the idempotent chip upserts leave exactly one row per chip.
"""

from __future__ import annotations

import io
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from pyproj import Transformer
from rasterio.enums import Resampling
from sqlalchemy import Connection, Engine, Text, func, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from geomelt.db import DatabaseUnavailable, unit_of_work
from geomelt.db.models import Scene, Source
from geomelt.db.queries.ingest import ChipRecord, prune_scene_chips, upsert_chips
from geomelt.db.queries.models import register_model
from geomelt.model import GeoMelt

from .errors import ChipError, IngestError
from .grid import (
    GSD_LEVELS_M,
    MAX_UPSAMPLE,
    ChipWindow,
    GridArea,
    GroundGrid,
    densified_window_ring,
    native_gsd_m,
    target_gsd,
    utm_epsg,
    valid_fraction,
    window_footprint,
)
from .radiometry import mean_brightness, to_uint8_rgb
from .read import SceneRaster, open_scene
from .warp import on_grid, resampling_for

__all__ = ["ChipSettings", "Pipeline", "SceneResult", "register_geomelt"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ChipSettings:
    # A cell with less valid (non-nodata, non-alpha, inside the scene) area than this fraction
    # of the whole chip is dropped and counted: edge cells are nodata-padded, so this is also the
    # smallest piece of a scene that is indexed.
    min_valid_fraction: float = 0.5
    # GSD levels scenes are resampled to, and how far a coarser scene may be upsampled to the
    # coarsest (grid.target_gsd); a source's --resolution overrides both.
    gsd_levels_m: tuple[float, ...] = GSD_LEVELS_M
    max_upsample: float = MAX_UPSAMPLE
    batch_size: int = 16
    caption_beams: int = 3
    caption_max_len: int = 32
    thumbnail_px: int = 128
    http_timeout_s: float = 30.0
    footprint_points_per_edge: int = 8


@dataclass
class SceneResult:
    scene_id: int
    item_id: str
    chips: int = 0
    skipped: int = 0
    already_done: bool = False
    # Why a readable scene was not chipped at all (its GSD is out of the model's range).
    not_chipped: str | None = None


@dataclass
class StageTimes:
    """Seconds and chips per stage, summed over scenes (for the benchmark and logs)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    chips: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, stage: str, seconds: float, chips: int) -> None:
        self.seconds[stage] += seconds
        self.chips[stage] += chips


@dataclass
class _Candidate:
    window: ChipWindow
    pixels: np.ndarray  # (chip, chip, 3) uint8, black where the scene has no data
    valid_fraction: float
    brightness: float | None
    cell_id: str


def register_geomelt(connection: Connection, model: GeoMelt) -> int:
    """Register a loaded model; its version is the sha256 prefix the engine finds it by."""
    return int(
        register_model(
            connection,
            name=model.name,
            version=model.sha256[:12],
            sha256=model.sha256,
            # The width of what the search ranks (fused vectors when the model carries fusion).
            embedding_dim=model.search_dim,
        )
    )


def thumbnail_jpeg(pixels: np.ndarray, size_px: int) -> bytes:
    image = Image.fromarray(pixels).resize((size_px, size_px), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80, optimize=True)
    return buffer.getvalue()


class Pipeline:
    """Scenes in, chips out, for one loaded model (`geomelt.model.load(...)`)."""

    def __init__(self, engine: Engine, model: Any, settings: ChipSettings | None = None) -> None:
        self.engine = engine
        self.model = model
        self.settings = settings or ChipSettings()
        self.times = StageTimes()
        with unit_of_work(engine) as connection:
            self.model_id = register_geomelt(connection, model)

    def ingest_scene(
        self, scene_id: int, progress: Callable[[int], None] | None = None
    ) -> SceneResult:
        """Ingest one scene; failures are recorded on the scene and raised."""
        with unit_of_work(self.engine) as connection:
            row = connection.execute(
                select(
                    Scene.id,
                    Scene.item_id,
                    Scene.item,
                    Scene.state,
                    Scene.datetime,
                    Source.assets,
                    Source.resolution_m,
                    Source.chip_size_px,
                    Source.overlap_px,
                )
                .join(Source, Source.id == Scene.source_id)
                .where(Scene.id == scene_id)
                .with_for_update(of=Scene)
            ).one_or_none()
            if row is None:
                raise IngestError(f"scene {scene_id} does not exist (its source was removed?)")
            if row.state == "done":
                return SceneResult(scene_id, row.item_id, already_done=True)
            self._set_state(connection, scene_id, "chipping", new_attempt=True)
        result = SceneResult(scene_id, row.item_id)
        try:
            self._run(row, result, progress)
        except DatabaseUnavailable:
            raise  # nothing can be recorded on the scene; the caller reports the outage
        except IngestError as exc:
            self._fail(scene_id, str(exc))
            raise
        except Exception as exc:
            message = f"item {row.item_id!r}: unexpected {type(exc).__name__}: {exc}"
            self._fail(scene_id, message)
            raise ChipError(message + "; please report this with the item") from exc
        return result

    def _run(self, row: Any, result: SceneResult, progress: Callable[[int], None] | None) -> None:
        kept: list[str] = []
        with open_scene(
            row.item, row.assets or (), row.resolution_m, timeout_s=self.settings.http_timeout_s
        ) as native:
            planned = self._ground_area(row, native, result)
            if planned is not None:
                raster = on_grid(native, *planned)
                self._record_read(row.id, raster)
                self._chip_scene(row, raster, planned[0], result, kept, progress)
        with unit_of_work(self.engine) as connection:
            connection.execute(
                update(Scene)
                .where(Scene.id == row.id)
                .values(state="done", last_error=result.not_chipped, chips_skipped=result.skipped)
            )
            # Chips of the scene's own grid (before migration 0005) or of cells no longer kept.
            prune_scene_chips(connection, scene_id=row.id, model_id=self.model_id, kept_cells=kept)
        logger.info(
            "item %s: %d chips stored, %d skipped", row.item_id, result.chips, result.skipped
        )

    def _chip_scene(
        self,
        row: Any,
        raster: SceneRaster,
        area: GridArea,
        result: SceneResult,
        kept: list[str],
        progress: Callable[[int], None] | None,
    ) -> None:
        batch: list[_Candidate] = []
        started_embedding = False
        to_lonlat = Transformer.from_crs(raster.epsg, 4326, always_xy=True).transform
        for candidate in self._chips(raster, area, result):
            kept.append(candidate.cell_id)
            batch.append(candidate)
            if len(batch) >= self.settings.batch_size:
                if not started_embedding:
                    self._state(row.id, "embedding")
                    started_embedding = True
                self._embed_and_store(row, raster, to_lonlat, batch, result, progress)
                batch = []
        if batch:
            self._state(row.id, "embedding")
            self._embed_and_store(row, raster, to_lonlat, batch, result, progress)

    def _ground_area(
        self, row: Any, native: SceneRaster, result: SceneResult
    ) -> tuple[GridArea, Resampling] | None:
        """The ground-grid cells the scene touches and how to resample it onto them; None
        (with the reason in `result.not_chipped`) for a scene too coarse for the model."""
        outline = ChipWindow(0, 0, 0, 0, native.width_px, native.height_px)
        xs, ys = densified_window_ring(outline, native.transform, points_per_edge=16)
        lons, lats = Transformer.from_crs(native.epsg, 4326, always_xy=True).transform(xs, ys)
        try:
            epsg = utm_epsg(float(np.mean(lons)), float(np.mean(lats)))
        except ValueError as exc:
            raise ChipError(f"item {row.item_id!r}: {exc}") from exc
        grid_xs, grid_ys = Transformer.from_crs(native.epsg, epsg, always_xy=True).transform(xs, ys)
        grid_xs, grid_ys = np.asarray(grid_xs), np.asarray(grid_ys)
        native_gsd = native_gsd_m(grid_xs, grid_ys, native.width_px, native.height_px)
        gsd = row.resolution_m
        if gsd is None:
            try:
                gsd = target_gsd(
                    native_gsd,
                    levels_m=self.settings.gsd_levels_m,
                    max_upsample=self.settings.max_upsample,
                )
            except ValueError as exc:
                # Nothing is wrong with the item: it is done, with no chips and the reason.
                result.not_chipped = (
                    f"not chipped: {exc}; set the source's --resolution to chip it at a GSD "
                    "of your choice anyway"
                )
                logger.warning("item %s: %s", row.item_id, result.not_chipped)
                return None
        grid = GroundGrid(epsg, gsd, row.chip_size_px, row.chip_size_px - row.overlap_px)
        return grid.area(grid_xs, grid_ys), resampling_for(native_gsd, gsd)

    def _chips(
        self, raster: SceneRaster, area: GridArea, result: SceneResult
    ) -> Iterator[_Candidate]:
        by_row: dict[int, list[ChipWindow]] = defaultdict(list)
        for window in area.windows():
            by_row[window.row].append(window)
        for row_windows in by_row.values():
            y0 = row_windows[0].y_px
            y1 = y0 + row_windows[0].height_px
            started = time.perf_counter()
            strip = raster.read_rows(y0, y1)
            self.times.add("read", time.perf_counter() - started, len(row_windows))
            started = time.perf_counter()
            candidates = []
            for window in row_windows:
                bands = strip[:, :, window.x_px : window.x_px + window.width_px]
                # Whole cells: outside the scene is NaN, so padding counts as invalid here.
                pixels, valid = to_uint8_rgb(bands, raster.radiometry)
                fraction = valid_fraction(valid)
                if fraction < self.settings.min_valid_fraction:
                    result.skipped += 1
                    continue
                candidates.append(
                    _Candidate(
                        window,
                        pixels,
                        fraction,
                        mean_brightness(pixels, valid),
                        area.grid.cell_id(window.row, window.col),
                    )
                )
            self.times.add("chip", time.perf_counter() - started, len(row_windows))
            yield from candidates

    def _embed_and_store(
        self,
        row: Any,
        raster: SceneRaster,
        to_lonlat: Any,
        batch: list[_Candidate],
        result: SceneResult,
        progress: Callable[[int], None] | None,
    ) -> None:
        images = np.stack([candidate.pixels for candidate in batch])
        started = time.perf_counter()
        captions = self.model.caption(
            images, beams=self.settings.caption_beams, max_len=self.settings.caption_max_len
        )
        self.times.add("caption", time.perf_counter() - started, len(batch))
        started = time.perf_counter()
        # Caption-aware search vectors: a fused model's vector includes its own caption's.
        embeddings = self.model.search_vectors(images, captions).numpy()
        self.times.add("embed", time.perf_counter() - started, len(batch))
        started = time.perf_counter()
        records = []
        for candidate, embedding, caption in zip(batch, embeddings, captions, strict=True):
            window = candidate.window
            try:
                ring = window_footprint(
                    window, raster.transform, to_lonlat, self.settings.footprint_points_per_edge
                )
            except ValueError as exc:
                raise ChipError(
                    f"item {row.item_id!r}: chip row {window.row} col {window.col} has no "
                    f"lon/lat footprint in EPSG:{raster.epsg} ({exc}); check the item's CRS"
                ) from exc
            records.append(
                ChipRecord(
                    scene_id=row.id,
                    model_id=self.model_id,
                    row=window.row,
                    col=window.col,
                    datetime=row.datetime,
                    footprint_lonlat=ring,
                    caption=caption,
                    embedding=embedding,
                    window_px=(window.x_px, window.y_px, window.width_px, window.height_px),
                    valid_fraction=candidate.valid_fraction,
                    mean_brightness=candidate.brightness,
                    thumbnail=thumbnail_jpeg(candidate.pixels, self.settings.thumbnail_px),
                    thumbnail_media_type="image/jpeg",
                    cell_id=candidate.cell_id,
                )
            )
        with unit_of_work(self.engine) as connection:
            upsert_chips(connection, records)
        self.times.add("store", time.perf_counter() - started, len(batch))
        result.chips += len(batch)
        if progress is not None:
            progress(len(batch))

    def _record_read(self, scene_id: int, raster: SceneRaster) -> None:
        # What was read and on which grid, in the scene's item (`geomelt:read`): the API
        # publishes it and derives each chip's projection and bands from it.
        path = literal(["properties", "geomelt:read"], ARRAY(Text))
        record = literal(raster.record(), JSONB)
        with unit_of_work(self.engine) as connection:
            connection.execute(
                update(Scene)
                .where(Scene.id == scene_id)
                .values(item=func.jsonb_set(Scene.item, path, record))
            )

    def _state(self, scene_id: int, state: str) -> None:
        with unit_of_work(self.engine) as connection:
            self._set_state(connection, scene_id, state)

    @staticmethod
    def _set_state(connection: Any, scene_id: int, state: str, new_attempt: bool = False) -> None:
        values: dict[str, Any] = {"state": state, "updated_at": func.now()}
        if new_attempt:
            values["attempts"] = Scene.attempts + 1
            values["last_error"] = None
        connection.execute(update(Scene).where(Scene.id == scene_id).values(**values))

    def _fail(self, scene_id: int, reason: str) -> None:
        logger.warning("scene %d failed: %s", scene_id, reason)
        with unit_of_work(self.engine) as connection:
            connection.execute(
                update(Scene)
                .where(Scene.id == scene_id)
                .values(state="failed", last_error=reason[:4000], updated_at=func.now())
            )
