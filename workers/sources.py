"""Sources as the workers and the command line see them: a `SourceSpec` in, status out.

Checks, writes and look-ups belong to `geomelt.db.sources`, shared with the HTTP API; this
module only adapts a `SourceSpec` to it and reports a source's ingestion status.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from geomelt.db.models import Chip, Model, Scene
from geomelt.db.sources import create_source, delete_source, get_source, list_sources
from geomelt.db.sources import ensure_source as _ensure_source

from .spec import SourceSpec

__all__ = [
    "SourceStatus",
    "add_source",
    "ensure_source",
    "get_source",
    "list_sources",
    "remove_source",
    "source_status",
]


def add_source(connection: Connection, spec: SourceSpec, *, allow_private_hosts: bool) -> int:
    """Register a new source; an existing name is an error (remove it first)."""
    source: dict[str, Any] = create_source(
        connection, spec.values(), allow_private_hosts=allow_private_hosts
    )
    return int(source["id"])


def ensure_source(connection: Connection, spec: SourceSpec, *, allow_private_hosts: bool) -> int:
    """The source with this name, created or updated to `spec` (for one-shot ingests)."""
    source: dict[str, Any] = _ensure_source(
        connection, spec.values(), allow_private_hosts=allow_private_hosts
    )
    return int(source["id"])


def remove_source(connection: Connection, name: str) -> int:
    """Delete the source with its scenes and chips; returns the number of scenes removed."""
    scenes: int = delete_source(connection, name)
    return scenes


@dataclass(frozen=True)
class SourceStatus:
    name: str
    last_polled_at: dt.datetime | None
    watermark: dt.datetime | None
    last_error: str | None
    scenes_by_state: dict[str, int]
    chips_by_model: dict[str, int]
    chips_skipped: int
    failures: list[tuple[str, int, str]] = field(default_factory=list)  # item, attempts, reason


def source_status(connection: Connection, name: str, max_failures: int = 10) -> SourceStatus:
    source = get_source(connection, name)
    source_id = source["id"]
    by_state: dict[str, int] = dict(
        connection.execute(
            select(Scene.state, func.count())
            .where(Scene.source_id == source_id)
            .group_by(Scene.state)
        ).all()
    )
    chips: dict[str, int] = dict(
        connection.execute(
            select(Model.name + "@" + Model.version, func.count())
            .select_from(Chip)
            .join(Scene, Scene.id == Chip.scene_id)
            .join(Model, Model.id == Chip.model_id)
            .where(Scene.source_id == source_id)
            .group_by(Model.name, Model.version)
        ).all()
    )
    skipped = connection.execute(
        select(func.coalesce(func.sum(Scene.chips_skipped), 0)).where(Scene.source_id == source_id)
    ).scalar_one()
    failures = connection.execute(
        select(Scene.item_id, Scene.attempts, Scene.last_error)
        .where(Scene.source_id == source_id, Scene.state == "failed")
        .order_by(Scene.updated_at.desc())
        .limit(max_failures)
    ).all()
    return SourceStatus(
        name=name,
        last_polled_at=source["last_polled_at"],
        watermark=source["watermark"],
        last_error=source["last_error"],
        scenes_by_state={state: int(n) for state, n in by_state.items()},
        chips_by_model={key: int(n) for key, n in chips.items()},
        chips_skipped=int(skipped),
        failures=[(item, int(attempts), reason or "") for item, attempts, reason in failures],
    )
