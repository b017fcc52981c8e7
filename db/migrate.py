"""Schema migrations, run programmatically (no alembic.ini to find)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from .errors import MigrationRequired, redact

__all__ = [
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "require_head",
    "upgrade",
]

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    # ConfigParser interpolation would read a '%' in a password as a template.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    head = ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    if head is None:
        raise MigrationRequired(f"no migrations found in {_MIGRATIONS}; the installation is broken")
    return head


def current_revision(url: str) -> str | None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def require_head(url: str) -> None:
    """Raise MigrationRequired unless the database is at the newest revision."""
    current, head = current_revision(url), head_revision()
    if current != head:
        raise MigrationRequired(
            f"the database at {redact(url)} is at schema revision {current or 'none'}, "
            f"this code needs {head}; run `geomelt db upgrade`"
        )
