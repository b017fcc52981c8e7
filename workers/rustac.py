"""`rustac serve` (a STAC API over an items file, in memory) as a child process on a free
loopback port, stopped with its parent."""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from geomelt.db.embedded import free_port

from .errors import IngestError, SourceUnavailable

__all__ = ["rustac_executable", "rustac_server"]


def rustac_executable() -> str:
    found = Path(sys.executable).parent / "rustac"
    if found.exists():
        return str(found)
    which = shutil.which("rustac")
    if which is None:
        raise IngestError("rustac is not installed; `pip install geomelt-search` installs it")
    return which


@contextlib.contextmanager
def rustac_server(items_path: Path, *, start_timeout_s: float = 20.0) -> Iterator[str]:
    """`rustac serve items.json` (in-memory backend) on a free loopback port; yields its URL."""
    port = free_port()
    # A file, not a pipe: nobody reads the log while the server runs, and a full pipe would
    # block it.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(  # noqa: S603 - our own executable, fixed arguments
        [
            rustac_executable(),
            "serve",
            str(items_path),
            "--create-collections",
            "--addr",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        # Its own process group: Ctrl-C reaches the parent, which then stops it in order.
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=1):  # noqa: S310 - loopback
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    error = log.read().decode(errors="replace")[-2000:]
                    raise SourceUnavailable(f"rustac serve did not start: {error}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _die_with_parent() -> None:
    # In the child: if the parent dies without stopping us (SIGKILL), Linux sends SIGTERM, so
    # no STAC server outlives the demo or test that started it.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
