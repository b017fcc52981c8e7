"""The schema as SQLAlchemy models. Migrations in db/migrations/ are reviewed against these.

Spatial data uses PostgreSQL's native geometric types: the embedded server has no PostGIS
(../shared/specs/STAC_API.md section 6.3). A footprint is stored three ways: `footprint`
(`polygon`, lon/lat EPSG:4326, GiST: exact `&&` overlap tests), `bbox` (`box`, GiST: the cheap
index prefilter) and `geometry` (the GeoJSON that STAC clients get back).

Embeddings are `halfvec` without a fixed dimension so that models of different widths share one
table; each registered model gets a partial HNSW index over `embedding::halfvec(D)` restricted
to its rows (see `queries.models.register_model`), so a new model re-indexes beside the old one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

__all__ = [
    "SCENE_STATES",
    "ApiKey",
    "Base",
    "Box",
    "Chip",
    "ChipCell",
    "Model",
    "Polygon",
    "Scene",
    "Source",
]

SCENE_STATES = ("pending", "chipping", "embedding", "done", "failed")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Polygon(UserDefinedType[str]):
    """PostgreSQL's native `polygon`; values are its text form `((x1,y1),(x2,y2),...)`."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "polygon"


class Box(UserDefinedType[str]):
    """PostgreSQL's native `box`; values are its text form `(x2,y2),(x1,y1)`."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "box"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Source(Base):
    """A registered STAC API collection with its filters, chipping settings and schedule."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    stac_api_url: Mapped[str] = mapped_column(Text)
    collection: Mapped[str] = mapped_column(Text)
    # Item-search parameters as given (bbox, intersects, datetime, filter, query).
    search: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    assets: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    resolution_m: Mapped[float | None] = mapped_column(Float)
    chip_size_px: Mapped[int] = mapped_column(Integer, server_default="224")
    overlap_px: Mapped[int] = mapped_column(Integer, server_default="0")
    poll_every_s: Mapped[int | None] = mapped_column(Integer)
    # Highest item `updated` (else `datetime`) seen; polling resumes after it.
    watermark: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()

    __table_args__ = (
        CheckConstraint("chip_size_px > 0", name="chip_size_positive"),
        CheckConstraint("overlap_px >= 0 AND overlap_px < chip_size_px", name="overlap_in_range"),
    )


class Scene(Base):
    """One STAC item of a source, and how far its ingestion got."""

    __tablename__ = "scenes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    collection: Mapped[str] = mapped_column(Text)
    item_id: Mapped[str] = mapped_column(Text)
    item: Mapped[dict[str, Any]] = mapped_column(JSONB)
    datetime: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The item's `updated` (or a hash of it) decides whether a re-polled item changed.
    item_version: Mapped[str] = mapped_column(Text)
    bbox: Mapped[str | None] = mapped_column(Box)
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    chips_skipped: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()

    __table_args__ = (
        UniqueConstraint("source_id", "collection", "item_id"),
        CheckConstraint(f"state IN {SCENE_STATES!r}", name="state_known"),
        Index(None, "state"),
    )


class Model(Base):
    """A model version whose embeddings live in `chips`."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    embedding_dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = _created()

    __table_args__ = (
        UniqueConstraint("name", "version"),
        CheckConstraint("embedding_dim BETWEEN 1 AND 4000", name="dim_indexable"),
    )


class Chip(Base):
    """One ground-grid cell as seen by one scene, captioned and embedded by one model version.

    `row`/`col` are the cell's row and column in its ground grid and `cell_id` names the cell
    (workers/grid.py, docs/GRID.md): chips of every acquisition of the same ground share it.
    NULL for chips cut on a scene's own grid before migration 0005 (re-chipped by the workers).
    """

    __tablename__ = "chips"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    row: Mapped[int] = mapped_column(Integer)
    col: Mapped[int] = mapped_column(Integer)
    datetime: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    footprint: Mapped[str] = mapped_column(Polygon)
    bbox: Mapped[str] = mapped_column(Box)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSONB)
    caption: Mapped[str | None] = mapped_column(Text)
    caption_tsv: Mapped[str] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english', coalesce(caption, ''))", persisted=True)
    )
    embedding: Mapped[Any] = mapped_column(HALFVEC())
    cell_id: Mapped[str | None] = mapped_column(Text)
    # Pixel window in the raster the scene was read as (its `geomelt:read` grid: since 0005 the
    # ground-grid area in UTM at the target GSD); always a whole cell, nodata-padded.
    window_x_px: Mapped[int] = mapped_column(Integer)
    window_y_px: Mapped[int] = mapped_column(Integer)
    window_width_px: Mapped[int] = mapped_column(Integer)
    window_height_px: Mapped[int] = mapped_column(Integer)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)
    thumbnail_media_type: Mapped[str | None] = mapped_column(String(32))
    valid_fraction: Mapped[float] = mapped_column(Float)
    mean_brightness: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = _created()

    __table_args__ = (
        UniqueConstraint("scene_id", "row", "col", "model_id"),
        Index(None, "footprint", postgresql_using="gist"),
        Index(None, "bbox", postgresql_using="gist"),
        Index(None, "datetime"),
        Index(None, "model_id"),
        Index(None, "caption_tsv", postgresql_using="gin"),
        # Change search and cell timelines: the chips of a cell in date order.
        Index(None, "model_id", "cell_id", "datetime"),
        # The heap is clustered on it (migration 0006): chips of one area share pages.
        Index("ix_chips_spatial_order", "model_id", text("chip_spatial_key(bbox)")),
        CheckConstraint("valid_fraction BETWEEN 0 AND 1", name="valid_fraction_range"),
    )


class ChipCell(Base):
    """Chips per model and 1° x 1° cell of the bbox centre (lon, lat floored), for the planner.

    Kept exact by statement triggers on `chips` (migration 0004); never written by hand.
    """

    __tablename__ = "chip_cells"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cell_x: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    cell_y: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    chips: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    """An API key for write and admin endpoints; only a hash of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # A short public prefix of the key finds the row; the secret is checked against the hash.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    created_at: Mapped[dt.datetime] = _created()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
