"""scripts/check_imports.py: the parts import only along the allowed arrows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "scripts" / "check_imports.py"


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_repository_has_no_forbidden_arrow() -> None:
    result = _check(ROOT)
    assert result.returncode == 0, result.stderr
    assert "workers  db" in result.stdout


def test_forbidden_arrows_fail_with_file_and_line(tmp_path: Path) -> None:
    for part in ("model", "db", "workers", "engine", "cli"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "__init__.py").write_text("")
    # Absolute, relative and plain-layout spellings of the same kinds of mistake.
    (tmp_path / "db" / "bad.py").write_text("from geomelt.engine import app\n")
    (tmp_path / "model" / "bad.py").write_text("\n\nfrom ..db import models\n")
    (tmp_path / "engine" / "bad.py").write_text("import workers.pipeline\n")
    (tmp_path / "cli" / "fine.py").write_text("from ..engine import app\n")
    shutil.copytree(tmp_path / "engine", tmp_path / "engine" / "sub")
    (tmp_path / "engine" / "sub" / "ok.py").write_text("from ...db import models\n")

    result = _check(tmp_path)

    assert result.returncode == 1
    assert "db/bad.py:1: db -> engine is not allowed" in result.stderr
    assert "model/bad.py:3: model -> db is not allowed" in result.stderr
    assert "engine/bad.py:1: engine -> workers is not allowed" in result.stderr
    assert "engine/sub/bad.py:1: engine -> workers" in result.stderr
    assert "cli/fine.py" not in result.stderr
    assert "ok.py" not in result.stderr
