"""A static file server on 127.0.0.1 that answers single HTTP Range requests, what GDAL's
/vsicurl/ sends to read Cloud-Optimized GeoTIFFs.

No packaged static server with HTTP Range support ships with the standard library or our
dependencies (http.server has none), so `RangeHandler` is a small http.server subclass.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..db.parsing import InvalidValue, byte_range

__all__ = ["QuietHTTPServer", "RangeHandler", "static_server"]

logger = logging.getLogger(__name__)


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """GET/HEAD of files with single byte ranges (what GDAL's /vsicurl/ sends)."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("static: " + format, *args)

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "not found")
            return None
        size = path.stat().st_size
        try:
            span = byte_range(self.headers.get("Range"), size)
        except InvalidValue:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        handle = path.open("rb")
        if span is None:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "image/tiff")
            self.end_headers()
            return handle
        first, last = span
        handle.seek(first)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "image/tiff")
        self.end_headers()
        self._remaining = last - first + 1
        return handle

    def copyfile(self, source: Any, outputfile: Any) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            shutil.copyfileobj(source, outputfile)
            return
        while remaining > 0:
            block = source.read(min(65536, remaining))
            if not block:
                break
            outputfile.write(block)
            remaining -= len(block)


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # GDAL drops connections once it has the bytes it wants; that is not a server fault.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@contextlib.contextmanager
def static_server(
    directory: Path, *, port: int = 0, handler: type[RangeHandler] = RangeHandler
) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 (port 0: any free one); yields the base URL."""

    def factory(*args: Any) -> RangeHandler:
        return handler(*args, directory=str(directory))

    server = QuietHTTPServer(("127.0.0.1", port), factory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
