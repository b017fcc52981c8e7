"""The embedded server: sharing between processes, surviving SIGKILL, refusing bad folders."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from geomelt.db import DataDirError, EmbeddedPostgres
from geomelt.db.embedded import _bin_dir

# A process that starts (or attaches to) the server, runs SQL, says "ready" and waits.
HOLDER = """
import sys, time
from pathlib import Path
import psycopg
from geomelt.db import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1])).start()
with psycopg.connect(server.url.replace("+psycopg", ""), autocommit=True) as conn:
    conn.execute(sys.argv[2])
print("ready", server.port, flush=True)
if sys.argv[3] == "hold":
    time.sleep(600)
server.stop()
"""


def _run_holder(data_dir: Path, sql: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir), sql, mode],
        stdout=subprocess.PIPE,
        text=True,
    )


def _wait_ready(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    line = process.stdout.readline().split()
    assert line[:1] == ["ready"], f"holder did not start (exit {process.poll()})"
    return line


def _query(server: EmbeddedPostgres, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(server.url.replace("+psycopg", "")) as conn:
        return conn.execute(sql).fetchall()


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])


def _wait_gone(pid: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.1)


def test_second_process_attaches_and_leaves_server_running(server_dir: Path) -> None:
    with EmbeddedPostgres(server_dir) as server:
        _query(server, "SELECT 1")
        with psycopg.connect(server.url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE TABLE shared (note text)")

        other = _run_holder(server_dir, "INSERT INTO shared VALUES ('from the worker')", "once")
        _, port = _wait_ready(other)
        assert other.wait(timeout=60) == 0

        assert int(port) == server.port
        # The attached process exited; the server it did not start is still serving.
        assert _query(server, "SELECT note FROM shared") == [("from the worker",)]


def test_server_outlives_its_starter_while_another_process_uses_it(server_dir: Path) -> None:
    starter = _run_holder(server_dir, "CREATE TABLE kept AS SELECT 42 AS answer", "hold")
    _wait_ready(starter)
    postmaster = _postmaster_pid(server_dir)
    with EmbeddedPostgres(server_dir) as server:
        starter.send_signal(signal.SIGKILL)
        starter.wait(timeout=10)
        time.sleep(3)  # longer than the supervisor's idle grace
        assert _query(server, "SELECT answer FROM kept") == [(42,)]
    # The last user left: the server shuts down cleanly by itself.
    _wait_gone(postmaster)
    assert not (server_dir / "pgdata" / "postmaster.pid").exists()


def test_sigkill_of_the_only_user_stops_server_and_restart_keeps_data(server_dir: Path) -> None:
    holder = _run_holder(server_dir, "CREATE TABLE kept AS SELECT 42 AS answer", "hold")
    _wait_ready(holder)
    postmaster = _postmaster_pid(server_dir)

    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    _wait_gone(postmaster)
    assert not (server_dir / "pgdata" / "postmaster.pid").exists()

    with EmbeddedPostgres(server_dir) as server:
        assert _query(server, "SELECT answer FROM kept") == [(42,)]


def test_sigkill_of_the_supervisor_stops_postgres_cleanly(server_dir: Path) -> None:
    with EmbeddedPostgres(server_dir) as server:
        _query(server, "SELECT 1")
        postmaster = _postmaster_pid(server_dir)
        supervisor = psutil.Process(postmaster).parent()
        assert supervisor is not None
        assert "geomelt.db.supervisor" in supervisor.cmdline()
        supervisor.kill()
        # The parent-death signal makes postgres shut down instead of lingering as an orphan.
        _wait_gone(postmaster)
        assert not (server_dir / "pgdata" / "postmaster.pid").exists()
    with EmbeddedPostgres(server_dir) as server:
        assert _query(server, "SELECT 1") == [(1,)]


def test_crashed_server_with_stale_lock_recovers(server_dir: Path) -> None:
    holder = _run_holder(server_dir, "CREATE TABLE kept AS SELECT 7 AS answer", "hold")
    _wait_ready(holder)
    postmaster = _postmaster_pid(server_dir)

    # A hard crash: the server dies first and leaves postmaster.pid behind.
    os.kill(postmaster, signal.SIGKILL)
    _wait_gone(postmaster)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert (server_dir / "pgdata" / "postmaster.pid").exists()

    with EmbeddedPostgres(server_dir) as server:
        assert _query(server, "SELECT answer FROM kept") == [(7,)]


def test_lock_naming_a_live_foreign_process_is_set_aside(server_dir: Path) -> None:
    with EmbeddedPostgres(server_dir) as server:
        _query(server, "SELECT 1")
        with psycopg.connect(server.url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept AS SELECT 1 AS answer")
        postmaster = _postmaster_pid(server_dir)
    _wait_gone(postmaster)
    lock = server_dir / "pgdata" / "postmaster.pid"
    # Simulate a reused PID: the lock names this (live, non-postgres) test process.
    lock.write_text(f"{os.getpid()}\n{server_dir / 'pgdata'}\n0\n5999\n\n127.0.0.1\n0\nready\n")

    with EmbeddedPostgres(server_dir) as server:
        assert _query(server, "SELECT answer FROM kept") == [(1,)]
    assert list((server_dir / "pgdata").glob("postmaster.pid.stale-*"))


def test_unwritable_data_dir_is_refused_with_a_fix(server_dir: Path) -> None:
    not_a_folder = server_dir / "file"
    not_a_folder.write_text("I am a file")
    with pytest.raises(DataDirError, match="GEOMELT_DATA_DIR") as info:
        EmbeddedPostgres(not_a_folder / "data").start()
    assert str(not_a_folder / "data") in str(info.value)


def test_foreign_files_in_pgdata_are_never_touched(server_dir: Path) -> None:
    (server_dir / "pgdata").mkdir()
    precious = server_dir / "pgdata" / "notes.txt"
    precious.write_text("not a database")
    with pytest.raises(DataDirError, match="not a PostgreSQL cluster"):
        EmbeddedPostgres(server_dir).start()
    assert precious.read_text() == "not a database"


def _connect_without_password(port: int) -> None:
    # PGPASSWORD / a ~/.pgpass must not supply what this check is about.
    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{port}/postgres", passfile="/nonexistent", password=""
    ):
        pass


def test_connections_without_the_password_are_refused(server_dir: Path) -> None:
    with EmbeddedPostgres(server_dir) as server:
        assert server.port is not None
        password_file = server_dir / "password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert password_file.stat().st_uid == os.geteuid()
        with pytest.raises(psycopg.OperationalError, match="password"):
            _connect_without_password(server.port)
        # The URL handed to the rest of the product carries the password and works.
        assert _query(server, "SELECT current_user") == [("postgres",)]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another OS user needs root")
def test_another_local_user_is_refused(server_dir: Path) -> None:
    with EmbeddedPostgres(server_dir) as server:
        psql = Path(_bin_dir()) / "psql"
        as_nobody = ["runuser", "-u", "nobody", "--"]
        target = ["-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-d", "postgres"]
        connect = subprocess.run(
            [*as_nobody, str(psql), "-w", *target, "-c", "SELECT 1"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert connect.returncode != 0
        assert "password" in connect.stderr
        steal = subprocess.run(
            [*as_nobody, "cat", str(server_dir / "password")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert steal.returncode != 0
        assert "Permission denied" in steal.stderr


def test_cluster_of_an_older_version_that_trusted_everyone_is_secured(server_dir: Path) -> None:
    with EmbeddedPostgres(server_dir) as server:
        with psycopg.connect(server.url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept AS SELECT 5 AS answer")
        postmaster = _postmaster_pid(server_dir)
    _wait_gone(postmaster)
    # What older versions left: no password file, every connection trusted.
    (server_dir / "password").unlink()
    hba = server_dir / "pgdata" / "pg_hba.conf"
    hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")

    with EmbeddedPostgres(server_dir) as server:
        assert server.port is not None
        assert _query(server, "SELECT answer FROM kept") == [(5,)]
        with pytest.raises(psycopg.OperationalError, match="password"):
            _connect_without_password(server.port)
    assert "trust" not in hba.read_text().replace("# ", "")
    assert stat.S_IMODE((server_dir / "password").stat().st_mode) == 0o600


def test_restarted_server_keeps_its_port(server_dir: Path) -> None:
    with EmbeddedPostgres(server_dir) as server:
        first_port = server.port
        postmaster = _postmaster_pid(server_dir)
        os.kill(postmaster, signal.SIGKILL)
        _wait_gone(postmaster)
        # The next command, while this process still holds its claim, starts it again on the
        # same port: connections made from the old URL work again.
        with EmbeddedPostgres(server_dir) as again:
            assert again.port == first_port
            assert _query(server, "SELECT 1") == [(1,)]
