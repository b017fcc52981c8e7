"""Schemathesis against the running API's own OpenAPI document: all checks, every operation,
read and (with an admin key) write endpoints, on a throw-away seeded database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from geomelt.db import create_db_engine
from geomelt.engine import issue_key

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Cases per operation and phase: the whole run stays near a minute on 2 cores.
MAX_EXAMPLES = 20
# Revoking keys would revoke the fuzzer's own and turn the rest of the run into 401s.
EXCLUDED = ("--exclude-path", "/admin/keys/{name}")
# The change-detection examples name acquisitions of the demo data, not of the seeded database.
NOT_EXAMPLES = ("--exclude-path-regex", "^/(changes|cells/)")


def _schemathesis(*arguments: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "schemathesis.cli", *arguments]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=cwd, check=False)
    assert run.returncode == 0, run.stdout[-30_000:] + run.stderr[-5000:]


def test_openapi_document_holds_under_fuzzing(
    live_server: str, database_url: str, tmp_path: Path
) -> None:
    engine = create_db_engine(database_url)
    try:
        key = issue_key(engine, name="fuzzer", scopes=["admin"])
    finally:
        engine.dispose()
    common = (
        f"{live_server}/schema/openapi.json",
        "--checks=all",
        f"--header=Authorization: Bearer {key}",
        "--seed=19",
        "--suppress-health-check=all",
        *EXCLUDED,
    )
    # The document's own examples, sent together as a client would copy them: accepted (2xx).
    _schemathesis("run", *common, "--phases=examples", *NOT_EXAMPLES, cwd=tmp_path)
    # Everything else: generated and mutated requests, stateful sequences over the links.
    _schemathesis(
        f"--config-file={CONFIG}", "run", *common, f"--max-examples={MAX_EXAMPLES}", cwd=tmp_path
    )
