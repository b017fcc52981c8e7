"""Alembic environment: run by `geomelt db upgrade` through geomelt.db.migrate, never directly."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.dialects.postgresql.base import ischema_names

from geomelt.db.models import Base, Box, Polygon

# Reflection must know the native geometric types, or autogenerate reports them as unknown.
ischema_names.setdefault("polygon", Polygon)
ischema_names.setdefault("box", Box)

# Objects that belong to the schema but not to our models: procrastinate's tables (applied from
# its own SQL by a migration) and the per-model HNSW indexes (made when a model is registered).
_EXTERNAL_PREFIXES = ("procrastinate_", "chips_embedding_hnsw_")


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (reflected and compare_to is None and (name or "").startswith(_EXTERNAL_PREFIXES))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=include_object,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(
        context.config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool
    )
    with engine.connect() as new_connection:
        _run(new_connection)
