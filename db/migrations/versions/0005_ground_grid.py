"""Chips on a ground-fixed grid: `chips.cell_id`, and every existing scene queued for re-chipping.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Chips were cut on each scene's own grid (rows and columns from the scene's corner); they are now
cut on a grid fixed to the ground (workers/grid.py, docs/GRID.md), named by `cell_id`, so that
acquisitions of the same ground share cells. Existing archives migrate by RE-CHIPPING: the old
chips stay searchable (with a NULL `cell_id`) until their scene is ingested again; this revision
puts every scene that has such chips back to `pending` and queues one ingest job per scene, and
the pipeline deletes a scene's off-grid chips when it stores the scene's new ones. Re-chipping
reads the imagery again: its assets must still be reachable (a scene whose assets are gone fails
with the reason and keeps its old chips).

Reviewed: adding a nullable column without a default is a catalog-only change (no rewrite); the
index is built with a plain CREATE INDEX (a lock on writes while it builds, seconds per million
chips); downgrade drops the column and index and leaves the re-chipped rows (their row/col are
ground-grid indexes, still unique per scene).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PENDING = """
UPDATE scenes SET state = 'pending', attempts = 0, last_error = NULL, updated_at = now()
WHERE id IN (SELECT DISTINCT scene_id FROM chips WHERE cell_id IS NULL)
"""

# The same job as workers.tasks.defer_ingest_jobs (queue 'ingest', task 'ingest_scene', lock
# 'scene-<id>'), written out here because migrations import nothing of the workers.
_QUEUE = """
SELECT procrastinate_defer_jobs_v1(ARRAY(
    SELECT ROW('ingest', 'ingest_scene', 0, 'scene-' || s.id, NULL,
               jsonb_build_object('scene_id', s.id), NULL)::procrastinate_job_to_defer_v1
    FROM scenes AS s
    WHERE s.id IN (SELECT DISTINCT scene_id FROM chips WHERE cell_id IS NULL)
    ORDER BY s.id
))
"""


def upgrade() -> None:
    op.add_column("chips", sa.Column("cell_id", sa.Text(), nullable=True))
    op.create_index(
        op.f("ix_chips_model_id_cell_id_datetime"),
        "chips",
        ["model_id", "cell_id", "datetime"],
        unique=False,
    )
    op.execute(_PENDING)
    op.execute(_QUEUE)


def downgrade() -> None:
    op.drop_index(op.f("ix_chips_model_id_cell_id_datetime"), table_name="chips")
    op.drop_column("chips", "cell_id")
