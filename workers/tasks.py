"""The job queue (procrastinate, on the same PostgreSQL): poll and ingest tasks, retries with
back-off, a periodic scheduler of per-source polls, and recovery of jobs of dead workers.

Task arguments are ids only. Jobs are inserted with procrastinate's own SQL function inside the
caller's transaction, so scenes, their jobs and the watermark commit together.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import Connection, Engine, bindparam, func, or_, select, text
from sqlalchemy.dialects.postgresql import JSONB

from geomelt.db import unit_of_work
from geomelt.db.models import Source

from .errors import SourceUnavailable
from .pipeline import Pipeline
from .poll import poll_source

__all__ = [
    "INGEST_QUEUE",
    "POLL_QUEUE",
    "RetryPolicy",
    "create_app",
    "defer_ingest_jobs",
    "recover_stalled_jobs",
]

logger = logging.getLogger(__name__)

POLL_QUEUE = "poll"
INGEST_QUEUE = "ingest"
INGEST_TASK = "ingest_scene"
POLL_TASK = "poll_source"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Retries of network failures (SourceUnavailable) only; bad data fails at once.

    Wait before retry n (n = 1, 2, ...) is `exponential_wait_s ** (n + 1)` seconds, procrastinate's
    formula: with 3 that is 9, 27, 81, 243 s. Zero retries immediately (tests).
    """

    max_attempts: int = 5  # in all, the first included; at least 2
    exponential_wait_s: int = 3

    def __post_init__(self) -> None:
        if self.max_attempts < 2 or self.exponential_wait_s < 0:
            raise ValueError(
                f"retry policy {self.max_attempts} attempts, wait base {self.exponential_wait_s}"
                " s: need at least 2 attempts and a wait base >= 0"
            )

    def strategy(self) -> procrastinate.RetryStrategy:
        # procrastinate counts retries after the first attempt.
        return procrastinate.RetryStrategy(
            max_attempts=self.max_attempts - 1,
            exponential_wait=self.exponential_wait_s,
            retry_exceptions=[SourceUnavailable],
        )


def defer_ingest_jobs(connection: Connection, scene_ids: Sequence[int]) -> None:
    """Queue one ingest job per scene, in the caller's transaction.

    The per-scene `lock` keeps two workers off one scene at a time.
    """
    if not scene_ids:
        return
    statement = text(
        "SELECT procrastinate_defer_jobs_v1(ARRAY(SELECT ROW(:queue, :task, 0, "
        "'scene-' || job.scene_id, NULL, job.args, NULL)::procrastinate_job_to_defer_v1 "
        "FROM jsonb_to_recordset(:jobs) AS job(scene_id bigint, args jsonb)))"
    ).bindparams(bindparam("jobs", type_=JSONB))
    jobs = [{"scene_id": int(i), "args": {"scene_id": int(i)}} for i in scene_ids]
    connection.execute(statement, {"queue": INGEST_QUEUE, "task": INGEST_TASK, "jobs": jobs})


async def recover_stalled_jobs(app: procrastinate.App, stalled_after_s: float) -> int:
    """Put jobs of workers without a heartbeat for `stalled_after_s` back in the queue."""
    stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s)
    count = 0
    for job in stalled:
        await app.job_manager.retry_job(job)
        count += 1
        logger.warning(
            "job %s (%s %s) of a dead worker was requeued",
            job.id,
            job.task_name,
            json.dumps(job.task_kwargs),
        )
    return count


def create_app(
    conninfo: str,
    engine: Engine,
    pipeline_factory: Callable[[], Pipeline],
    *,
    retry: RetryPolicy | None = None,
    stalled_after_s: float = 60.0,
) -> procrastinate.App:
    """The procrastinate app with our tasks; `pipeline_factory` is called once, on first use,
    so poll-only workers never load the model."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    strategy = (retry or RetryPolicy()).strategy()
    pipeline_lock = threading.Lock()
    pipelines: list[Pipeline] = []

    def pipeline() -> Pipeline:
        with pipeline_lock:
            if not pipelines:
                pipelines.append(pipeline_factory())
            return pipelines[0]

    @app.task(name=INGEST_TASK, queue=INGEST_QUEUE, retry=strategy, pass_context=False)
    def ingest_scene(scene_id: int) -> None:
        pipeline().ingest_scene(scene_id)

    @app.task(name=POLL_TASK, queue=POLL_QUEUE, retry=strategy)
    def poll(source_id: int) -> None:
        poll_source(engine, source_id, enqueue=defer_ingest_jobs)

    @app.periodic(cron="* * * * *", periodic_id="schedule-polls")
    @app.task(name="schedule_polls", queue=POLL_QUEUE)
    def schedule_polls(timestamp: int) -> None:
        for source_id in due_sources(engine):
            try:
                poll.configure(queueing_lock=f"poll-{source_id}").defer(source_id=source_id)
            except AlreadyEnqueued:
                logger.debug("source %d: a poll is already queued", source_id)

    @app.periodic(cron="* * * * *", periodic_id="recover-stalled")
    @app.task(name="recover_stalled", queue=POLL_QUEUE)
    async def recover_stalled(timestamp: int) -> None:
        await recover_stalled_jobs(app, stalled_after_s)

    return app


def due_sources(engine: Engine) -> list[int]:
    """Sources with a schedule whose last poll is at least one period ago."""
    with unit_of_work(engine) as connection:
        return list(
            connection.execute(
                select(Source.id).where(
                    Source.poll_every_s.is_not(None),
                    or_(
                        Source.last_polled_at.is_(None),
                        Source.last_polled_at
                        + func.make_interval(0, 0, 0, 0, 0, 0, Source.poll_every_s)
                        <= func.now(),
                    ),
                )
            ).scalars()
        )


def defer_poll(app: procrastinate.App, source_id: int) -> bool:
    """Queue a poll now; False when one is already queued."""
    try:
        app.tasks[POLL_TASK].configure(queueing_lock=f"poll-{source_id}").defer(source_id=source_id)
    except AlreadyEnqueued:
        return False
    return True
