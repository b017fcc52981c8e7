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
    InvalidVector,
    MigrationRequired,
    NotFound,
)
from .migrate import current_revision, downgrade, head_revision, require_head, upgrade
from .session import RETRY_AFTER_S, create_db_engine, unit_of_work
from .sources import InvalidSource

__all__ = [
    "RETRY_AFTER_S",
    "Conflict",
    "DataDirError",
    "DatabaseUnavailable",
    "DbError",
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "ExtensionMissing",
    "InvalidSource",
    "InvalidVector",
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
