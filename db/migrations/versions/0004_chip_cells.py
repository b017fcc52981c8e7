"""Per-cell chip counts for the search planner's spatial estimates.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

PostgreSQL estimates every geometric `&&` with a constant selectivity (0.5 %), so the planner of
filtered vector search (queries.search.plan_vector_search) reads spatial estimates from here:
the number of chips per model and 1° x 1° cell of the chip's bbox centre.

Reviewed: kept exact by statement-level triggers with transition tables (one aggregate upsert
per statement, also for COPY and cascaded deletes), cells upserted in key order so concurrent
writers cannot deadlock on them. No foreign key to models: a model's cascaded delete reaches
chips first and its trigger must still be able to write (then removes the emptied cells).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The cell of a chip: its bbox centre, floored to whole degrees (clamped to the valid range).
_COUNT_FUNCTION = """
CREATE FUNCTION chip_cells_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO chip_cells AS c (model_id, cell_x, cell_y, chips)
        SELECT model_id, cell_x, cell_y, -count(*) FROM (
            SELECT model_id,
                   least(greatest(floor((center(bbox))[0]), -180), 179)::smallint AS cell_x,
                   least(greatest(floor((center(bbox))[1]), -90), 89)::smallint AS cell_y
            FROM old_rows
        ) AS r GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (model_id, cell_x, cell_y) DO UPDATE SET chips = c.chips + EXCLUDED.chips;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO chip_cells AS c (model_id, cell_x, cell_y, chips)
        SELECT model_id, cell_x, cell_y, count(*) FROM (
            SELECT model_id,
                   least(greatest(floor((center(bbox))[0]), -180), 179)::smallint AS cell_x,
                   least(greatest(floor((center(bbox))[1]), -90), 89)::smallint AS cell_y
            FROM new_rows
        ) AS r GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (model_id, cell_x, cell_y) DO UPDATE SET chips = c.chips + EXCLUDED.chips;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM chip_cells WHERE chips = 0;
    END IF;
    RETURN NULL;
END $$
"""

_TRIGGERS = (
    "CREATE TRIGGER chip_cells_insert AFTER INSERT ON chips REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION chip_cells_count()",
    "CREATE TRIGGER chip_cells_update AFTER UPDATE ON chips "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION chip_cells_count()",
    "CREATE TRIGGER chip_cells_delete AFTER DELETE ON chips REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION chip_cells_count()",
)

_BACKFILL = """
INSERT INTO chip_cells (model_id, cell_x, cell_y, chips)
SELECT model_id, cell_x, cell_y, count(*) FROM (
    SELECT model_id,
           least(greatest(floor((center(bbox))[0]), -180), 179)::smallint AS cell_x,
           least(greatest(floor((center(bbox))[1]), -90), 89)::smallint AS cell_y
    FROM chips
) AS r GROUP BY 1, 2, 3
"""


def upgrade() -> None:
    op.create_table(
        "chip_cells",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("cell_x", sa.SmallInteger(), nullable=False),
        sa.Column("cell_y", sa.SmallInteger(), nullable=False),
        sa.Column("chips", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "cell_x", "cell_y", name=op.f("pk_chip_cells")),
    )
    op.execute(_COUNT_FUNCTION)
    for trigger in _TRIGGERS:
        op.execute(trigger)
    op.execute(_BACKFILL)


def downgrade() -> None:
    for name in ("chip_cells_insert", "chip_cells_update", "chip_cells_delete"):
        op.execute("DROP TRIGGER " + name + " ON chips")
    op.execute("DROP FUNCTION chip_cells_count()")
    op.drop_table("chip_cells")
