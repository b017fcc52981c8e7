"""`geomelt worker`: run ingestion jobs from the shared PostgreSQL job queue."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import click

from geomelt.db import create_db_engine
from geomelt.workers import (
    INGEST_QUEUE,
    POLL_QUEUE,
    ChipSettings,
    IngestError,
    Pipeline,
    RetryPolicy,
    create_app,
    recover_stalled_jobs,
)

from .database import open_database
from .errors import cli_errors
from .settings import DEFAULT_MODEL, Settings

__all__ = ["load_model", "model_options", "worker_command"]

logger = logging.getLogger(__name__)


def model_options(command: Any) -> Any:
    options = [
        click.option(
            "--model",
            "model_name",
            default=DEFAULT_MODEL,
            show_default=True,
            help="Model name or .safetensors path.",
        ),
        click.option(
            "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True
        ),
        click.option("--batch-size", type=int, default=16, show_default=True, help="Chips."),
        click.option("--beams", type=int, default=3, show_default=True, help="Caption beams."),
        click.option(
            "--caption-max-len", type=int, default=32, show_default=True, help="Caption tokens."
        ),
        click.option(
            "--min-valid-fraction",
            type=click.FloatRange(0.0, 1.0),
            default=0.5,
            show_default=True,
            help="Drop ground-grid cells with less valid (in-scene, non-nodata) area than this.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_model(model_name: str, device: str) -> Any:
    import torch  # heavy: imported only by the commands that run the model

    from geomelt.model import load

    if device == "cuda" and not torch.cuda.is_available():
        raise IngestError(
            "--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False); "
            "use --device cpu or install a CUDA build of torch"
        )
    return load(model_name, device=device)


@click.command("worker")
@click.option(
    "--queues",
    default=f"{POLL_QUEUE},{INGEST_QUEUE}",
    show_default=True,
    help="Comma-separated queues to serve (poll: STAC polling; ingest: chip+caption+embed).",
)
@click.option("--concurrency", type=int, default=1, show_default=True, help="Jobs at once.")
@click.option(
    "--stalled-after",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds without a heartbeat after which another worker's jobs are requeued.",
)
@click.option(
    "--retry-wait",
    type=int,
    default=3,
    show_default=True,
    help="Back-off base: retry n waits BASE**(n+1) s.",
)
@click.option("--max-attempts", type=int, default=5, show_default=True)
@click.option("--exit-when-empty", is_flag=True, help="Stop once the queues are empty.")
@model_options
def worker_command(
    queues: str,
    concurrency: int,
    stalled_after: float,
    retry_wait: int,
    max_attempts: int,
    exit_when_empty: bool,
    model_name: str,
    device: str,
    batch_size: int,
    beams: int,
    caption_max_len: int,
    min_valid_fraction: float,
) -> None:
    """Run ingestion workers on the job queue (as many, on as many machines, as you like)."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        engine = create_db_engine(url, pool_size=max(2, concurrency + 1))
        settings = ChipSettings(
            batch_size=batch_size,
            caption_beams=beams,
            caption_max_len=caption_max_len,
            min_valid_fraction=min_valid_fraction,
        )
        # Fail fast (bad device, unknown model) before taking any job.
        serves_ingest = INGEST_QUEUE in queues.split(",")
        model = load_model(model_name, device) if serves_ingest else None

        def pipeline() -> Pipeline:
            return Pipeline(engine, model or load_model(model_name, device), settings)

        app = create_app(
            url.replace("+psycopg", ""),
            engine,
            pipeline,
            retry=RetryPolicy(max_attempts=max_attempts, exponential_wait_s=retry_wait),
            stalled_after_s=stalled_after,
        )
        asyncio.run(_run(app, queues.split(","), concurrency, stalled_after, not exit_when_empty))
        engine.dispose()


async def _run(
    app: Any, queues: list[str], concurrency: int, stalled_after: float, wait: bool
) -> None:
    async with app.open_async():
        requeued = await recover_stalled_jobs(app, stalled_after)
        if requeued:
            logger.warning("requeued %d jobs of dead workers", requeued)
        await app.run_worker_async(
            queues=queues,
            concurrency=concurrency,
            wait=wait,
            update_heartbeat_interval=max(0.5, stalled_after / 4),
            stalled_worker_timeout=stalled_after,
        )
