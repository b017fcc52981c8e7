"""Ingestion: STAC polling, chipping, captioning and embedding, the job queue."""

from .errors import ChipError, IngestError, SourceUnavailable
from .oneshot import IngestSummary, ingest_once
from .pipeline import ChipSettings, Pipeline, SceneResult
from .poll import PollResult, poll_source
from .sources import (
    SourceStatus,
    add_source,
    ensure_source,
    get_source,
    list_sources,
    remove_source,
    source_status,
)
from .spec import SourceSpec, parse_duration
from .tasks import (
    INGEST_QUEUE,
    POLL_QUEUE,
    RetryPolicy,
    create_app,
    defer_ingest_jobs,
    defer_poll,
    recover_stalled_jobs,
)

__all__ = [
    "INGEST_QUEUE",
    "POLL_QUEUE",
    "ChipError",
    "ChipSettings",
    "IngestError",
    "IngestSummary",
    "Pipeline",
    "PollResult",
    "RetryPolicy",
    "SceneResult",
    "SourceSpec",
    "SourceStatus",
    "SourceUnavailable",
    "add_source",
    "create_app",
    "defer_ingest_jobs",
    "defer_poll",
    "ensure_source",
    "get_source",
    "ingest_once",
    "list_sources",
    "parse_duration",
    "poll_source",
    "recover_stalled_jobs",
    "remove_source",
    "source_status",
]
