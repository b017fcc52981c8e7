"""`geomelt serve keys list|revoke`, and known errors ending in one line instead of a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from geomelt.cli import main
from geomelt.db import create_db_engine
from geomelt.engine.auth import check_key
from geomelt.engine.errors import Unauthorized


def test_keys_are_listed_and_revoked(database_url: str) -> None:
    runner = CliRunner()
    env = {"GEOMELT_DATABASE_URL": database_url}
    created = runner.invoke(main, ["serve", "create-key", "ci", "--scope", "admin"], env=env)
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    prefix = key.split("_")[1]

    listed = runner.invoke(main, ["serve", "keys", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    line = next(row for row in listed.output.splitlines() if row.startswith("ci\t"))
    assert f"gmk_{prefix}_…" in line
    assert "\tadmin\t" in line
    assert line.endswith("active")
    # Only the public prefix is shown, never the secret.
    assert key.split("_", 2)[2] not in listed.output

    revoked = runner.invoke(main, ["serve", "keys", "revoke", "ci"], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in runner.invoke(main, ["serve", "keys", "list"], env=env).output
    engine = create_db_engine(database_url)
    try:
        with pytest.raises(Unauthorized, match="revoked"):
            check_key(engine, key, "read")
    finally:
        engine.dispose()

    again = runner.invoke(main, ["serve", "keys", "revoke", "ci"], env=env)
    assert again.exit_code == 2
    assert "no active key" in again.output
    assert "Traceback" not in again.output


def test_unknown_model_ends_in_one_line(database_url: str) -> None:
    result = CliRunner().invoke(
        main,
        ["worker", "--model", "typo", "--exit-when-empty"],
        env={"GEOMELT_DATABASE_URL": database_url},
    )
    assert result.exit_code == 6, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "model 'typo'" in lines[0]
    assert "available names" in lines[0]
