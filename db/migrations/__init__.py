"""Alembic environment and revisions of the GeoMELT Search schema."""
