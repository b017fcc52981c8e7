"""The CLI skeleton: every command is listed."""

from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner

from geomelt.cli import main

COMMANDS = ("demo", "serve", "worker", "source", "ingest", "search", "db", "model")


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = {
        line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()
    }
    assert set(COMMANDS) <= listed


def test_db_upgrade_with_embedded_server_then_current(server_dir: Path) -> None:
    env = {"GEOMELT_DATA_DIR": str(server_dir), "GEOMELT_DATABASE_URL": ""}
    upgraded = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    current = CliRunner().invoke(main, ["db", "current"], env=env)
    assert current.exit_code == 0, current.output
    database, code = current.output.strip().split("; ")
    assert database.split(": ")[1] == code.split(": ")[1] != "base"
    # The server was started for the commands and stops once no process uses it.
    lock = server_dir / "postgres" / "pgdata" / "postmaster.pid"
    deadline = time.monotonic() + 30
    while lock.exists():
        assert time.monotonic() < deadline, "the embedded server kept running"
        time.sleep(0.2)


def test_search_names_a_bad_bbox_or_datetime_before_any_request() -> None:
    # Port 9 (discard): were a request sent, the error would be a connection failure instead.
    url = ["--url", "http://127.0.0.1:9/"]
    bbox = CliRunner().invoke(main, ["search", "boats", *url, "--bbox", "0,10,1,5"])
    assert bbox.exit_code == 2
    assert "--bbox [0.0, 10.0, 1.0, 5.0]: south > north" in bbox.output
    when = CliRunner().invoke(main, ["search", "boats", *url, "--datetime", "2024-05-01"])
    assert when.exit_code == 2
    assert "--datetime: '2024-05-01' is not an RFC 3339 date-time" in when.output
