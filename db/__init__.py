"""The database: schema, migrations, the embedded server and the shared query builders."""

from .connect import check_database
from .embedded import EmbeddedPostgres
from .errors import (
    Conflict,
    DatabaseUnavailable,
    DataDirError,
    DbError,
    EmbeddedServerError,
    ExtensionMissing,
    MigrationRequired,
    NotFound,
)
from .migrate import current_revision, downgrade, head_revision, require_head, upgrade
from .session import create_db_engine, unit_of_work

__all__ = [
    "Conflict",
    "DataDirError",
    "DatabaseUnavailable",
    "DbError",
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "ExtensionMissing",
    "MigrationRequired",
    "NotFound",
    "check_database",
    "create_db_engine",
    "current_revision",
    "downgrade",
    "head_revision",
    "require_head",
    "unit_of_work",
    "upgrade",
]
