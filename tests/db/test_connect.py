"""Checking an external database: unreachable servers and missing pgvector."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from geomelt.cli import main
from geomelt.db import DatabaseUnavailable, EmbeddedPostgres, ExtensionMissing, check_database


def test_migrated_database_passes(database_url: str) -> None:
    check_database(database_url)


def test_unreachable_database_names_url_without_password() -> None:
    url = "postgresql+psycopg://geo:s3cret@127.0.0.1:1/geomelt"
    with pytest.raises(DatabaseUnavailable) as info:
        check_database(url, timeout_s=2)
    message = str(info.value)
    assert "127.0.0.1:1/geomelt" in message
    assert "s3cret" not in message
    assert "GEOMELT_DATABASE_URL" in message


def test_database_without_pgvector_is_refused(embedded_server: EmbeddedPostgres) -> None:
    # A real server where pgvector is not installed: hide the extension directory from this
    # database (PostgreSQL 18's extension_control_path), as on a server without the package.
    admin_url = embedded_server.database_url("postgres").replace("+psycopg", "")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS no_pgvector")
        admin.execute("CREATE DATABASE no_pgvector")
        admin.execute("ALTER DATABASE no_pgvector SET extension_control_path = '/nonexistent'")
    with pytest.raises(ExtensionMissing, match="no pgvector extension available"):
        check_database(embedded_server.database_url("no_pgvector"))


def test_cli_reports_unreachable_database_in_one_line() -> None:
    result = CliRunner().invoke(
        main,
        ["db", "upgrade"],
        env={"GEOMELT_DATABASE_URL": "postgresql://geo:s3cret@127.0.0.1:1/geomelt"},
    )
    assert result.exit_code == 4
    assert "cannot connect to the database" in result.output
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output
