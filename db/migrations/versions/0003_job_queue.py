"""The job queue's schema: procrastinate's own SQL, as shipped by the pinned procrastinate.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

procrastinate documents applying its schema.sql once and then its numbered migrations on
upgrade; applying it from here keeps one `geomelt db upgrade` for everything. A procrastinate
upgrade must come with a revision that applies its matching files from procrastinate/sql/migrations.
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE fn record;
        BEGIN
            DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
                procrastinate_jobs, procrastinate_workers CASCADE;
            FOR fn IN
                SELECT p.oid::regprocedure AS signature FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
            LOOP
                EXECUTE 'DROP FUNCTION ' || fn.signature || ' CASCADE';
            END LOOP;
            DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_status,
                procrastinate_job_event_type CASCADE;
        END $$;
        """
    )
