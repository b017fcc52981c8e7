"""Core tables: sources, scenes, models, chips, api_keys.

Reviewed: chips.scene_id and scenes.source_id need no index of their own (they lead the unique
keys); the HNSW indexes are per model, made by queries.models.register_model.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy.dialects import postgresql

from geomelt.db.models import Box, Polygon

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "embedding_dim BETWEEN 1 AND 4000", name=op.f("ck_models_dim_indexable")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_models_name_version")),
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("stac_api_url", sa.Text(), nullable=False),
        sa.Column("collection", sa.Text(), nullable=False),
        sa.Column(
            "search", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("assets", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("resolution_m", sa.Float(), nullable=True),
        sa.Column("chip_size_px", sa.Integer(), server_default="224", nullable=False),
        sa.Column("overlap_px", sa.Integer(), server_default="0", nullable=False),
        sa.Column("poll_every_s", sa.Integer(), nullable=True),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("chip_size_px > 0", name=op.f("ck_sources_chip_size_positive")),
        sa.CheckConstraint(
            "overlap_px >= 0 AND overlap_px < chip_size_px",
            name=op.f("ck_sources_overlap_in_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )
    op.create_table(
        "scenes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("collection", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("item", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("datetime", sa.DateTime(timezone=True), nullable=True),
        sa.Column("item_version", sa.Text(), nullable=False),
        sa.Column("bbox", Box(), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("chips_skipped", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'chipping', 'embedding', 'done', 'failed')",
            name=op.f("ck_scenes_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_scenes_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenes")),
        sa.UniqueConstraint(
            "source_id",
            "collection",
            "item_id",
            name=op.f("uq_scenes_source_id_collection_item_id"),
        ),
    )
    op.create_index(op.f("ix_scenes_state"), "scenes", ["state"], unique=False)
    op.create_table(
        "chips",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("scene_id", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("col", sa.Integer(), nullable=False),
        sa.Column("datetime", sa.DateTime(timezone=True), nullable=True),
        sa.Column("footprint", Polygon(), nullable=False),
        sa.Column("bbox", Box(), nullable=False),
        sa.Column("geometry", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column(
            "caption_tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', coalesce(caption, ''))", persisted=True),
            nullable=False,
        ),
        sa.Column("embedding", HALFVEC(), nullable=False),
        sa.Column("window_x_px", sa.Integer(), nullable=False),
        sa.Column("window_y_px", sa.Integer(), nullable=False),
        sa.Column("window_width_px", sa.Integer(), nullable=False),
        sa.Column("window_height_px", sa.Integer(), nullable=False),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.Column("thumbnail_media_type", sa.String(length=32), nullable=True),
        sa.Column("valid_fraction", sa.Float(), nullable=False),
        sa.Column("mean_brightness", sa.Float(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "valid_fraction BETWEEN 0 AND 1", name=op.f("ck_chips_valid_fraction_range")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_chips_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["scene_id"], ["scenes.id"], name=op.f("fk_chips_scene_id_scenes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chips")),
        sa.UniqueConstraint(
            "scene_id", "row", "col", "model_id", name=op.f("uq_chips_scene_id_row_col_model_id")
        ),
    )
    op.create_index(op.f("ix_chips_bbox"), "chips", ["bbox"], unique=False, postgresql_using="gist")
    op.create_index(
        op.f("ix_chips_caption_tsv"), "chips", ["caption_tsv"], unique=False, postgresql_using="gin"
    )
    op.create_index(op.f("ix_chips_datetime"), "chips", ["datetime"], unique=False)
    op.create_index(
        op.f("ix_chips_footprint"), "chips", ["footprint"], unique=False, postgresql_using="gist"
    )
    op.create_index(op.f("ix_chips_model_id"), "chips", ["model_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_chips_model_id"), table_name="chips")
    op.drop_index(op.f("ix_chips_footprint"), table_name="chips", postgresql_using="gist")
    op.drop_index(op.f("ix_chips_datetime"), table_name="chips")
    op.drop_index(op.f("ix_chips_caption_tsv"), table_name="chips", postgresql_using="gin")
    op.drop_index(op.f("ix_chips_bbox"), table_name="chips", postgresql_using="gist")
    op.drop_table("chips")
    op.drop_index(op.f("ix_scenes_state"), table_name="scenes")
    op.drop_table("scenes")
    op.drop_table("sources")
    op.drop_table("models")
    op.drop_table("api_keys")
