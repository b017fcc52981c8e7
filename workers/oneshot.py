"""`geomelt ingest`: poll once and ingest every scene in this process, without the queue."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from geomelt.db import unit_of_work
from geomelt.db.models import Scene

from .errors import IngestError, SourceUnavailable
from .pipeline import Pipeline, SceneResult
from .poll import PollResult, poll_source
from .sources import ensure_source
from .spec import SourceSpec
from .tasks import RetryPolicy

__all__ = ["IngestSummary", "ingest_once"]

logger = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    source_id: int
    poll: PollResult | None = None
    poll_error: str | None = None
    scenes_done: int = 0
    chips: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # item id, reason


def ingest_once(
    engine: Engine,
    spec: SourceSpec,
    pipeline: Pipeline,
    *,
    allow_private_hosts: bool = False,
    retry: RetryPolicy | None = None,
    on_scenes: Callable[[int], None] | None = None,
    on_scene_done: Callable[[SceneResult | None], None] | None = None,
    max_items: int | None = None,
) -> IngestSummary:
    """Register (or update) the source, poll it (at most `max_items`), then ingest every scene
    of the source not done yet. `allow_private_hosts`: see `geomelt.db.sources`.

    A failing catalog page is reported in the summary; the scenes stored before it are still
    ingested. Network failures of a scene are retried with the policy's back-off.
    """
    policy = retry or RetryPolicy()
    with unit_of_work(engine) as connection:
        source_id = ensure_source(connection, spec, allow_private_hosts=allow_private_hosts)
    summary = IngestSummary(source_id)
    try:
        summary.poll = poll_source(engine, source_id, enqueue=None, max_items=max_items)
    except SourceUnavailable as exc:
        summary.poll_error = str(exc)
    with unit_of_work(engine) as connection:
        todo = connection.execute(
            select(Scene.id, Scene.item_id)
            .where(Scene.source_id == source_id, Scene.state != "done")
            .order_by(Scene.id)
        ).all()
    if on_scenes is not None:
        on_scenes(len(todo))
    for scene_id, item_id in todo:
        result = _with_retries(pipeline, scene_id, item_id, policy, summary)
        if result is not None:
            summary.scenes_done += 1
            summary.chips += result.chips
            summary.skipped += result.skipped
        if on_scene_done is not None:
            on_scene_done(result)
    return summary


def _with_retries(
    pipeline: Pipeline, scene_id: int, item_id: str, policy: RetryPolicy, summary: IngestSummary
) -> SceneResult | None:
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return pipeline.ingest_scene(scene_id)
        except SourceUnavailable as exc:
            if attempt == policy.max_attempts:
                summary.failures.append((item_id, str(exc)))
                return None
            wait_s = policy.exponential_wait_s ** (attempt + 1) if policy.exponential_wait_s else 0
            logger.warning("item %s: %s; retry %d in %d s", item_id, exc, attempt, wait_s)
            time.sleep(wait_s)
        except IngestError as exc:
            summary.failures.append((item_id, str(exc)))
            return None
    return None
