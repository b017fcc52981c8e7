"""Alembic revisions, one concern each."""
