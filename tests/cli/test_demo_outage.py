"""A database that dies while `geomelt demo` ingests ends the demo with one clear message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from geomelt import SAMPLE_DIR
from geomelt.db import EmbeddedPostgres

GEOMELT = str(Path(sys.executable).parent / "geomelt")
FAST_MODEL = ("--model", "tiny-random", "--caption-max-len", "4")


def _scenes(url: str) -> int:
    try:
        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=2) as connection:
            row = connection.execute("SELECT count(*) FROM scenes").fetchone()
    except psycopg.errors.UndefinedTable:
        return 0  # the demo has not migrated the database yet
    return int(row[0]) if row else 0


def test_database_dying_mid_ingest_ends_demo_with_one_message(
    server_dir: Path, tmp_path: Path
) -> None:
    with EmbeddedPostgres(server_dir) as server:
        env = {
            **os.environ,
            "GEOMELT_DATABASE_URL": server.url,
            "GEOMELT_DATA_DIR": str(tmp_path / "data"),
        }
        demo = subprocess.Popen(
            [GEOMELT, "demo", str(SAMPLE_DIR), "--no-browser", "--port", "0", *FAST_MODEL],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Kill PostgreSQL once the demo has registered the sample's scenes: mid-ingest.
            deadline = time.monotonic() + 240
            while _scenes(server.url) == 0:
                assert demo.poll() is None, demo.communicate()
                assert time.monotonic() < deadline, "the demo registered no scene"
                time.sleep(0.05)
            postmaster = int((server_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGKILL)
            _, err = demo.communicate(timeout=180)
        finally:
            if demo.poll() is None:
                demo.kill()
    assert demo.returncode == 4, err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(message) == 1, err
    assert "database stopped while ingesting" in message[0]
    assert "run `geomelt demo` again" in message[0]
    # Nothing else but the progress bar on stderr: no chained exceptions, no log spew.
    assert len(err.strip().splitlines()) <= 3, err
