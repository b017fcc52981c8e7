"""The embedded server's supervisor: `python -m geomelt.db.supervisor DATA_DIR POSTGRES_CMD...`.

Started detached by the first process that needs the embedded server (db/embedded.py). It runs
postgres as its child and stops it when no process holds a shared lock on `clients.lock` any
more, after a short grace period so that back-to-back commands reuse one server.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

from .embedded import CLIENTS_LOCK, server_user_kwargs

logger = logging.getLogger("geomelt.db.supervisor")

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.2
_IDLE_GRACE_S = 2.0
_STOP_TIMEOUT_S = 60.0


def _die_with_parent() -> None:
    # Runs in the child after the uid switch (Popen applies `user` first, and a uid change
    # would clear the setting). If the supervisor dies, even by SIGKILL, postgres gets SIGINT:
    # a fast, clean shutdown instead of an orphaned server.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def _no_clients(lock_file: object) -> bool:
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[arg-type]
    except BlockingIOError:
        return False
    return True


def _stop(server: subprocess.Popen[bytes]) -> int:
    # SIGINT = fast shutdown: roll back open transactions, checkpoint, exit.
    server.send_signal(signal.SIGINT)
    try:
        return server.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGQUIT = immediate shutdown; the next start runs crash recovery, data stays safe.
        server.send_signal(signal.SIGQUIT)
        return server.wait(timeout=_STOP_TIMEOUT_S)


def supervise(data_dir: Path, server_command: list[str]) -> int:
    server = subprocess.Popen(  # noqa: S603 - the bundled postgres binary, no shell
        server_command,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
        **server_user_kwargs(),
    )
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    idle_since: float | None = None
    with (data_dir / CLIENTS_LOCK).open("a") as lock_file:
        while True:
            if server.poll() is not None:
                logger.warning("postgres exited by itself with status %s", server.returncode)
                return server.returncode or 1
            if stopping:
                return _stop(server)
            if _no_clients(lock_file):
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= _IDLE_GRACE_S:
                    # Keep the exclusive lock until postgres is down: a process arriving now
                    # waits, then finds no server and starts a new one.
                    logger.info("no process uses the server any more; stopping it")
                    return _stop(server)
                fcntl.flock(lock_file, fcntl.LOCK_UN)
            else:
                idle_since = None
            time.sleep(_POLL_S)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor: %(message)s")
    data_dir, *server_command = sys.argv[1:]
    sys.exit(supervise(Path(data_dir), server_command))


if __name__ == "__main__":
    main()
