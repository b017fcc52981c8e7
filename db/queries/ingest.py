"""The write path of ingestion: scenes and chips, idempotent upserts and a bulk load.

Workers call these; tests of the search engine and the benchmarks seed their databases with them
too, so there is one way in for data (one row encoding: `_chip_row`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert

from ..errors import InvalidVector
from ..models import Chip, Scene

__all__ = [
    "ChipRecord",
    "SceneRecord",
    "box_text",
    "copy_chips",
    "polygon_text",
    "prune_scene_chips",
    "upsert_chips",
    "upsert_scene",
]

LonLat = tuple[float, float]


def polygon_text(ring: Sequence[LonLat]) -> str:
    """PostgreSQL `polygon` literal of a lon/lat ring (closing vertex optional)."""
    points = list(ring)
    if len(points) > 1 and points[0] == points[-1]:
        points = points[:-1]
    if len(points) < 3:
        raise ValueError(f"a footprint needs at least 3 distinct vertices, got {len(points)}")
    return "(" + ",".join(f"({x!r},{y!r})" for x, y in points) + ")"


def box_text(ring: Sequence[LonLat]) -> str:
    """PostgreSQL `box` literal of the envelope of a lon/lat ring."""
    xs = [x for x, _ in ring]
    ys = [y for _, y in ring]
    return f"({max(xs)!r},{max(ys)!r}),({min(xs)!r},{min(ys)!r})"


@dataclass(frozen=True, kw_only=True)
class SceneRecord:
    """A STAC item of a source, as polled."""

    source_id: int
    collection: str
    item_id: str
    item: dict[str, Any]
    datetime: dt.datetime | None
    # What decides "changed": the item's `updated`, else a hash of the item.
    item_version: str
    bbox_lonlat: tuple[float, float, float, float] | None  # west, south, east, north


@dataclass(frozen=True, kw_only=True)
class ChipRecord:
    """One captioned and embedded chip, ready to store."""

    scene_id: int
    model_id: int
    row: int
    col: int
    datetime: dt.datetime | None
    footprint_lonlat: Sequence[LonLat]  # outer ring in EPSG:4326, densified
    caption: str | None
    embedding: np.ndarray[Any, np.dtype[np.floating[Any]]]  # unit vector (D,)
    window_px: tuple[int, int, int, int]  # x offset, y offset, width, height
    valid_fraction: float
    mean_brightness: float | None = None
    thumbnail: bytes | None = None
    thumbnail_media_type: str | None = None
    # The ground-grid cell (workers/grid.py); None only for chips cut on a scene's own grid.
    cell_id: str | None = None


def upsert_scene(connection: Connection, scene: SceneRecord) -> tuple[int, bool]:
    """Insert or refresh a scene; returns (scene id, whether it is new or changed).

    A changed item (new `item_version`) goes back to `pending` with its attempts reset; an
    unchanged one is left exactly as it is, so re-polling changes nothing.
    """
    bbox = None
    if scene.bbox_lonlat is not None:
        west, south, east, north = scene.bbox_lonlat
        bbox = box_text([(west, south), (east, north)])
    values = {
        "source_id": scene.source_id,
        "collection": scene.collection,
        "item_id": scene.item_id,
        "item": scene.item,
        "datetime": scene.datetime,
        "item_version": scene.item_version,
        "bbox": bbox,
    }
    statement = insert(Scene).values(**values)
    upsert = statement.on_conflict_do_update(
        index_elements=["source_id", "collection", "item_id"],
        set_={
            "item": statement.excluded.item,
            "datetime": statement.excluded.datetime,
            "item_version": statement.excluded.item_version,
            "bbox": statement.excluded.bbox,
            "state": "pending",
            "attempts": 0,
            "last_error": None,
            "updated_at": func.now(),
        },
        where=Scene.item_version != statement.excluded.item_version,
    ).returning(Scene.id)
    changed_id = connection.execute(upsert).scalar()
    if changed_id is not None:
        return int(changed_id), True
    existing = connection.execute(
        select(Scene.id).where(
            Scene.source_id == scene.source_id,
            Scene.collection == scene.collection,
            Scene.item_id == scene.item_id,
        )
    ).scalar_one()
    return int(existing), False


def upsert_chips(connection: Connection, chips: Sequence[ChipRecord]) -> int:
    """Store a batch of chips; a re-run with the same chips leaves the table as it was.

    Returns the number of rows written. Embeddings must be finite and non-zero (zero vectors
    are never found by a cosine HNSW index).
    """
    if not chips:
        return 0
    rows = [_chip_row(chip) for chip in chips]
    statement = insert(Chip).values(rows)
    updatable = [
        "datetime",
        "footprint",
        "bbox",
        "geometry",
        "caption",
        "embedding",
        "window_x_px",
        "window_y_px",
        "window_width_px",
        "window_height_px",
        "thumbnail",
        "thumbnail_media_type",
        "valid_fraction",
        "mean_brightness",
        "cell_id",
    ]
    statement = statement.on_conflict_do_update(
        index_elements=["scene_id", "row", "col", "model_id"],
        set_={name: getattr(statement.excluded, name) for name in updatable},
        # Unchanged rows are not rewritten: no dead tuples, no index churn on re-runs.
        # (`geometry` stands for footprint and bbox: polygons have no equality operator.)
        where=or_(
            *(
                getattr(Chip, name).is_distinct_from(getattr(statement.excluded, name))
                for name in updatable
                if name not in ("footprint", "bbox")
            )
        ),
    )
    return len(connection.execute(statement.returning(Chip.id)).all())


# The columns `_chip_row` fills, in COPY order, with the types of `chips` (a staging table).
_COPY_COLUMNS = {
    "scene_id": "int8",
    "model_id": "int4",
    "row": "int4",
    "col": "int4",
    "datetime": "timestamptz",
    "footprint": "polygon",
    "bbox": "box",
    "geometry": "jsonb",
    "caption": "text",
    "embedding": "halfvec",
    "window_x_px": "int4",
    "window_y_px": "int4",
    "window_width_px": "int4",
    "window_height_px": "int4",
    "thumbnail": "bytea",
    "thumbnail_media_type": "text",
    "valid_fraction": "float8",
    "mean_brightness": "float8",
    "cell_id": "text",
}


def copy_chips(connection: Connection, chips: Sequence[ChipRecord]) -> list[int]:
    """Bulk-load new chips (an archive backfill, a benchmark); returns their ids in input order.

    The rows `upsert_chips` would write, sent with COPY to a staging table and moved into
    `chips` by one INSERT ... SELECT (its triggers run as for any insert): several times faster
    than a multi-row upsert for large batches. No conflict handling: a chip that already exists
    fails the batch with a Conflict; use upsert_chips for re-runs.
    """
    if not chips:
        return []
    raw = connection.connection.driver_connection  # psycopg's, for COPY
    if raw is None:
        raise RuntimeError("copy_chips: the connection has no driver connection")
    columns = ", ".join(f'"{name}"' for name in _COPY_COLUMNS)
    typed = ", ".join(f'"{name}" {kind}' for name, kind in _COPY_COLUMNS.items())
    # Dropped at commit; emptied after each batch so a transaction may load several.
    connection.execute(
        text(f"CREATE TEMP TABLE IF NOT EXISTS chips_copy (ord bigserial, {typed}) ON COMMIT DROP")
    )
    with raw.cursor() as cursor, cursor.copy(f"COPY chips_copy ({columns}) FROM STDIN") as copy:
        for chip in chips:
            row = _chip_row(chip)
            row["geometry"] = json.dumps(row["geometry"])
            row["embedding"] = "[" + ",".join(map(repr, row["embedding"].tolist())) + "]"
            copy.write_row([row[name] for name in _COPY_COLUMNS])
    # Column names come from _COPY_COLUMNS, never from input.
    move = f"INSERT INTO chips ({columns}) SELECT {columns} FROM chips_copy ORDER BY ord"  # noqa: S608
    ids = connection.execute(text(move + " RETURNING id"))
    chip_ids = [int(chip_id) for chip_id in ids.scalars()]
    connection.execute(text("TRUNCATE chips_copy"))
    return chip_ids


def _chip_row(chip: ChipRecord) -> dict[str, Any]:
    vector = np.asarray(chip.embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if vector.ndim != 1 or not np.isfinite(vector).all() or norm == 0.0:
        raise InvalidVector(
            f"chip (scene {chip.scene_id}, row {chip.row}, col {chip.col}): the embedding must "
            "be a finite, non-zero 1-D vector"
        )
    ring = list(chip.footprint_lonlat)
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    x_px, y_px, width_px, height_px = chip.window_px
    return {
        "scene_id": chip.scene_id,
        "model_id": chip.model_id,
        "row": chip.row,
        "col": chip.col,
        "datetime": chip.datetime,
        "footprint": polygon_text(ring),
        "bbox": box_text(ring),
        "geometry": {"type": "Polygon", "coordinates": [[list(point) for point in ring]]},
        "caption": chip.caption,
        "embedding": vector / norm,
        "window_x_px": x_px,
        "window_y_px": y_px,
        "window_width_px": width_px,
        "window_height_px": height_px,
        "thumbnail": chip.thumbnail,
        "thumbnail_media_type": chip.thumbnail_media_type,
        "valid_fraction": chip.valid_fraction,
        "mean_brightness": chip.mean_brightness,
        "cell_id": chip.cell_id,
    }


def prune_scene_chips(
    connection: Connection, *, scene_id: int, model_id: int, kept_cells: Sequence[str]
) -> int:
    """Delete the scene's chips of this model that are not in `kept_cells`: chips of the scene's
    own grid from before the ground grid (NULL cell), and cells a re-run no longer keeps (new
    chip settings, a changed item). Returns the number deleted."""
    statement = delete(Chip).where(
        Chip.scene_id == scene_id,
        Chip.model_id == model_id,
        or_(Chip.cell_id.is_(None), Chip.cell_id.not_in(list(kept_cells))),
    )
    return int(connection.execute(statement).rowcount)
