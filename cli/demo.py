"""`geomelt demo`: from a folder of GeoTIFFs (or a STAC API) to a searchable map, in one command.

Start (or attach to) the database, migrate it, ingest with the default model through the real
path (a local folder is served as a STAC API by rustac plus a Range file server), then serve the
STAC API and the page at /app until Ctrl-C. Ingestion is idempotent: scenes that are done are
no-ops, so a second start takes seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import socket
import threading
import time
import urllib.parse
import urllib.request
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import uvicorn
from sqlalchemy import Engine

from geomelt import SAMPLE_DIR
from geomelt.db import DatabaseUnavailable, create_db_engine, upgrade
from geomelt.engine import AppDeps, EngineConfig, create_app
from geomelt.workers import ChipSettings, Pipeline, RetryPolicy, SourceSpec, ingest_once
from geomelt.workers.local import (
    GEOTIFF_SUFFIXES,
    SIDECAR_SUFFIXES,
    local_catalog,
    local_collections,
)

from .database import open_database
from .errors import DatabaseProblem, IngestProblem, cli_errors
from .settings import DEFAULT_MODEL, Settings
from .worker import load_model

__all__ = ["demo_command"]

# Greedy captions of at most 16 tokens: the demo ingests on the CPU, where beam search (3 beams,
# up to 32 tokens) multiplies the decoder's work per chip for little gain in a first look.
DEMO_BEAMS = 1
DEMO_CAPTION_MAX_LEN = 16

# Queries whose best hits in the shipped sample show what they ask for (checked with the default
# model by tests/demo/test_cli_demo.py).
SAMPLE_QUERIES = (
    "storage tanks",
    "meandering river",
    "sea and desert coast",
    "parking lot with cars",
    "residential area",
)


class DemoUsage(click.ClickException):
    exit_code = 2


@click.command("demo")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--stac-api", "stac_api", help="Ingest from this STAC API instead of a folder.")
@click.option("--collection", help="Collection of --stac-api to ingest.")
@click.option("--bbox", help="With --stac-api: minx,miny,maxx,maxy in lon/lat.")
@click.option("--datetime", "datetime_", help="With --stac-api: instant or interval A/B.")
@click.option(
    "--max-items",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="With --stac-api: ingest at most this many scenes.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--no-browser", is_flag=True, help="Do not open the page in a browser.")
@click.option(
    "--model",
    "model_name",
    help=f"Model name or .safetensors path [default: GEOMELT_API_MODEL, else {DEFAULT_MODEL}].",
)
@click.option(
    "--beams",
    type=click.IntRange(1),
    default=DEMO_BEAMS,
    show_default=True,
    help="Caption beams (1: greedy, fast).",
)
@click.option(
    "--caption-max-len",
    type=click.IntRange(1),
    default=DEMO_CAPTION_MAX_LEN,
    show_default=True,
    help="Caption tokens.",
)
@click.option(
    "--tiles", help="Basemap tile URL template for the page, e.g. https://.../{z}/{x}/{y}.png"
)
def demo_command(
    path: Path | None,
    stac_api: str | None,
    collection: str | None,
    bbox: str | None,
    datetime_: str | None,
    max_items: int,
    host: str,
    port: int,
    no_browser: bool,
    model_name: str | None,
    beams: int,
    caption_max_len: int,
    tiles: str | None,
) -> None:
    """Ingest imagery and serve a searchable map, in one command.

    PATH is a folder of GeoTIFFs or COGs (uint8 RGB, pan, or multi-band reflectance, any CRS);
    without PATH or --stac-api: GEOMELT_DEMO_DATA, else the sample shipped with geomelt (20
    openly licensed crops: Vienna, NAIP, SpaceNet, Sentinel-2, Landsat). Captions are greedy
    and short by default (--beams 1, --caption-max-len 16) so the first result comes quickly
    on a CPU.
    """
    settings = Settings.from_env()
    started = time.monotonic()
    if path is None and stac_api is None:
        path = settings.demo_data or SAMPLE_DIR
        if path == SAMPLE_DIR:
            check_sample(SAMPLE_DIR)
    if path is not None and stac_api is not None:
        raise DemoUsage("give either PATH or --stac-api, not both")
    if stac_api is not None and not collection:
        raise DemoUsage("--stac-api needs --collection (the collection id to ingest)")
    if path is not None:
        _check_folder(path)
    listener = _bind(host, port)  # before anything slow: a taken port fails at once
    with cli_errors(), listener, open_database(settings) as url:
        upgrade(url)
        engine = create_db_engine(url)
        chips = ChipSettings(batch_size=16, caption_beams=beams, caption_max_len=caption_max_len)
        try:
            with _source(path, stac_api, collection, bbox, datetime_, settings) as spec:
                # After the catalog is built: a folder of unusable files fails before this.
                model = load_model(model_name or settings.api_model, "cpu")
                bound = max_items if stac_api is not None else None  # a folder: every file
                _ingest(engine, spec, Pipeline(engine, model, chips), bound)
        finally:
            engine.dispose()
        config = EngineConfig(
            database_url=url,
            secret=(settings.api_secret or secrets.token_urlsafe(32)).encode(),
            base_url=settings.api_base_url,
            trusted_proxies=settings.api_trusted_proxies,
            reads_require_key=settings.api_reads_require_key,
            local_files=local_collections(settings.data_dir / "demo"),
        )
        app = create_app(AppDeps(config=config, load_model=lambda: model))
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False)
        )
        bound_host, bound_port = listener.getsockname()[:2]
        announce = threading.Thread(
            target=_announce,
            args=(
                server,
                f"http://{bound_host}:{bound_port}",
                started,
                not no_browser,
                tiles,
                path is not None and path.resolve() == SAMPLE_DIR,
            ),
            daemon=True,
        )
        announce.start()
        # uvicorn handles SIGINT/SIGTERM itself (graceful shutdown), then re-raises SIGINT.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[listener])
    click.echo("geomelt demo stopped.")


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise DemoUsage(f"PATH {path}: does not exist; give a folder of GeoTIFF/COG files")
    if not path.is_dir():
        raise DemoUsage(f"PATH {path}: is not a folder; give the folder that holds the GeoTIFFs")
    # Any other file is tried, and listed with its reason when it is not usable.
    if not any(
        p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in SIDECAR_SUFFIXES
        for p in path.iterdir()
    ):
        raise DemoUsage(
            f"PATH {path}: holds no GeoTIFF (looked for {', '.join(GEOTIFF_SUFFIXES)} files)"
        )


def check_sample(folder: Path) -> None:
    """Every file the sample's manifest lists is there with its sha256; else name it and the fix."""
    fix = (
        "reinstall geomelt-search (pip install --force-reinstall --no-deps geomelt-search), "
        "or in a clone: git checkout -- geomelt/sample"
    )
    try:
        entries = json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DemoUsage(f"sample manifest {folder / 'manifest.json'}: {exc}; {fix}") from exc
    for entry in entries:
        path = folder / entry["file"]
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise DemoUsage(f"sample file {path}: {exc.strerror}; {fix}") from exc
        if digest != entry["sha256"]:
            raise DemoUsage(
                f"sample file {path}: sha256 {digest[:12]}... is not the manifest's "
                f"{entry['sha256'][:12]}... (changed or damaged); {fix}"
            )


def _bind(host: str, port: int) -> socket.socket:
    # The protocol must be named: asyncio sets TCP_NODELAY only on sockets whose `proto` is
    # IPPROTO_TCP, and without it every small response waited ~40 ms for the client's delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise DemoUsage(
            f"--port {port} on {host}: cannot listen ({exc.strerror}); another program uses it. "
            "Stop it or pass another --port (e.g. --port 8010)"
        ) from exc
    listener.listen(128)
    return listener


@contextlib.contextmanager
def _source(
    path: Path | None,
    stac_api: str | None,
    collection: str | None,
    bbox: str | None,
    datetime_: str | None,
    settings: Settings,
) -> Iterator[SourceSpec]:
    """The source to ingest; a folder is served (rustac + Range server) while the block runs."""
    if stac_api is not None and collection is not None:
        host = urllib.parse.urlsplit(stac_api).netloc or stac_api
        yield SourceSpec.from_options(
            name=f"{collection}@{host}",
            stac_api_url=stac_api,
            collection=collection,
            bbox=bbox,
            datetime=datetime_,
        )
        return
    if path is None:
        raise DemoUsage("give PATH or --stac-api with --collection")
    folder = path.resolve()
    work_dir = settings.data_dir / "demo" / _slug(folder)
    with local_catalog(folder, work_dir) as (url, catalog):
        for skipped in catalog.skipped:
            click.echo(f"skipped {skipped.path.name}: {skipped.reason}", err=True)
        if not catalog.items:
            raise DemoUsage(
                f"PATH {path}: none of its files is a usable GeoTIFF (each is listed above "
                "with the reason)"
            )
        click.echo(f"{len(catalog.items)} GeoTIFFs in {folder} served as a STAC API at {url}")
        yield SourceSpec(name=catalog.collection, stac_api_url=url, collection=catalog.collection)


def _slug(folder: Path) -> str:
    # Distinct folders of the same name get distinct work folders.
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    return f"{folder.name}-{digest}"


def _ingest(engine: Engine, spec: SourceSpec, pipeline: Pipeline, max_items: int | None) -> None:
    bar: Any = None
    todo = 0

    def start(total: int) -> None:
        nonlocal bar, todo
        todo = total
        if total == 0:
            return
        # click 8.5 exposes get_text_stream lazily; mypy sees an object.
        stderr = click.get_text_stream("stderr")  # type: ignore[operator]
        bar = click.progressbar(length=total, label="ingesting scenes", file=stderr)
        bar.__enter__()

    def done(_: Any) -> None:
        bar.update(1)

    began = time.monotonic()
    try:
        summary = ingest_once(
            engine,
            spec,
            pipeline,
            # The demo's own catalog and file servers listen on loopback.
            allow_private_hosts=True,
            retry=RetryPolicy(max_attempts=2, exponential_wait_s=2),
            on_scenes=start,
            on_scene_done=done,
            max_items=max_items,
        )
    except DatabaseUnavailable as exc:
        raise DatabaseProblem(
            f"the database stopped while ingesting: {exc}. The scenes finished so far are kept; "
            "once it runs again (the embedded one starts with the next command), run "
            "`geomelt demo` again to resume where it stopped"
        ) from exc
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if summary.poll_error:
        raise IngestProblem(summary.poll_error)
    for item_id, reason in summary.failures:
        click.echo(f"failed {item_id}: {reason}", err=True)
    if todo == 0:
        click.echo("Everything is ingested already (unchanged scenes are skipped).")
        return
    click.echo(
        f"ingested {summary.scenes_done} scenes ({summary.chips} chips) in "
        f"{time.monotonic() - began:.1f} s; {len(summary.failures)} failed"
    )


def _announce(
    server: uvicorn.Server,
    base: str,
    started: float,
    browser: bool,
    tiles: str | None,
    sample: bool,
) -> None:
    """Once the server answers: print the URLs and example queries that fit the data."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    page = f"{base}/app" + (f"?{urllib.parse.urlencode({'tiles': tiles})}" if tiles else "")
    lines = [
        "",
        f"GeoMELT Search is ready after {time.monotonic() - started:.1f} s.",
        f"  Map:      {page}",
        f"  STAC API: {base}/  (pystac-client: Client.open('{base}/'))",
        "  Try:",
        *(f"    curl '{example}'" for example in _examples(base, sample)),
        "Press Ctrl-C to stop.",
    ]
    click.echo("\n".join(lines))
    if browser:
        webbrowser.open(page)


# Words that make a poor example query on their own (captions may also repeat them).
_FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "of",
        "in",
        "on",
        "with",
        "and",
        "or",
        "to",
        "at",
        "by",
        "there",
        "this",
        "it",
        "its",
        "some",
        "many",
        "lots",
        "image",
        "aerial",
    ]
)


def _content_words(caption: str, most: int = 3) -> list[str]:
    """The first distinct non-filler words of a caption: 'a is image of of forest' -> forest."""
    words: list[str] = []
    for word in caption.lower().replace(".", " ").replace(",", " ").split():
        if word not in _FILLER and word not in words:
            words.append(word)
    return words[:most]


def _examples(base: str, sample: bool = False) -> list[str]:
    """Text queries (the sample's known ones, else words of a stored caption), a bbox + date
    filter around a chip, more-like-this."""
    try:
        with urllib.request.urlopen(f"{base}/search?limit=1", timeout=30) as response:  # noqa: S310 - our own server
            features = json.load(response).get("features") or []
    except OSError:
        features = []
    if not features:
        return [f"{base}/search?q=buildings&limit=5"]
    first = features[0]
    words = _content_words(first["properties"].get("caption") or "") or ["buildings"]
    west, south, east, north = first["bbox"][:4]
    pad = 0.05
    area = ",".join(f"{v:.4f}" for v in (west - pad, south - pad, east + pad, north + pad))
    when = first["properties"].get("datetime") or first["properties"].get("start_datetime")
    year = (when or "2020")[:4]
    encode = urllib.parse.quote
    queries = SAMPLE_QUERIES if sample else (" ".join(words),)
    return [
        *(f"{base}/search?q={encode(query)}&limit=5" for query in queries),
        f"{base}/search?bbox={area}&datetime={year}-01-01T00:00:00Z/..&limit=5",
        f"{base}/search?similar_to={encode(first['id'])}&limit=5",
    ]
