"""`geomelt ingest`: poll a STAC collection once and ingest it here, with a progress bar."""

from __future__ import annotations

from typing import Any

import click

from geomelt.db import create_db_engine
from geomelt.workers import ChipSettings, Pipeline, RetryPolicy, ingest_once

from .database import open_database
from .errors import IngestProblem, cli_errors
from .settings import Settings
from .sources import search_options, spec_from_options
from .worker import load_model, model_options

__all__ = ["ingest_command"]


@click.command("ingest")
@search_options
@click.option("--name", help="Source name to store under (default: COLLECTION@HOST).")
@click.option("--retry-wait", type=int, default=3, show_default=True)
@click.option("--max-attempts", type=int, default=3, show_default=True)
@model_options
def ingest_command(
    name: str | None,
    retry_wait: int,
    max_attempts: int,
    model_name: str,
    device: str,
    batch_size: int,
    beams: int,
    caption_max_len: int,
    min_valid_fraction: float,
    **options: Any,
) -> None:
    """Ingest a STAC collection once, synchronously (for scripts and the demo)."""
    with cli_errors():
        host = options["stac_api"].split("://", 1)[-1].split("/", 1)[0]
        spec = spec_from_options(name or f"{options['collection']}@{host}", None, options)
        model = load_model(model_name, device)
        settings = Settings.from_env()
        with open_database(settings) as url:
            engine = create_db_engine(url)
            pipeline = Pipeline(
                engine,
                model,
                ChipSettings(
                    batch_size=batch_size,
                    caption_beams=beams,
                    caption_max_len=caption_max_len,
                    min_valid_fraction=min_valid_fraction,
                ),
            )
            bar: Any = None

            def start(total: int) -> None:
                nonlocal bar
                # click 8.5 exposes get_text_stream lazily; mypy sees an object.
                stderr = click.get_text_stream("stderr")  # type: ignore[operator]
                bar = click.progressbar(length=total, label="scenes", file=stderr)
                bar.__enter__()

            def done(_: Any) -> None:
                bar.update(1)

            try:
                summary = ingest_once(
                    engine,
                    spec,
                    pipeline,
                    allow_private_hosts=settings.allow_private_sources,
                    retry=RetryPolicy(max_attempts=max_attempts, exponential_wait_s=retry_wait),
                    on_scenes=start,
                    on_scene_done=done,
                )
            finally:
                if bar is not None:
                    bar.__exit__(None, None, None)
                engine.dispose()
    click.echo(
        f"{spec.name}: {summary.scenes_done} scenes done, {summary.chips} chips, "
        f"{summary.skipped} mostly-empty chips skipped, {len(summary.failures)} scenes failed"
    )
    for item_id, reason in summary.failures:
        click.echo(f"failed {item_id}: {reason}", err=True)
    if summary.poll_error:
        raise IngestProblem(summary.poll_error)
    if summary.failures:
        raise IngestProblem(f"{len(summary.failures)} scenes failed; see above")
