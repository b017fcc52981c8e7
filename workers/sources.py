"""Registered sources in the database: add, list, status, remove."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from geomelt.db.models import Chip, Model, Scene, Source
from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from .errors import SourceSettingsError
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


def _values(spec: SourceSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "stac_api_url": spec.stac_api_url,
        "collection": spec.collection,
        "search": spec.search,
        "assets": list(spec.assets),
        "resolution_m": spec.resolution_m,
        "chip_size_px": spec.chip_size_px,
        "overlap_px": spec.overlap_px,
        "poll_every_s": spec.poll_every_s,
    }


def add_source(connection: Connection, spec: SourceSpec) -> int:
    """Register a new source; an existing name is an error (remove it first)."""
    source_id = connection.execute(
        insert(Source)
        .values(**_values(spec))
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(Source.id)
    ).scalar()
    if source_id is None:
        raise SourceSettingsError(
            f"source {spec.name!r} exists already; `geomelt source remove {spec.name}` first "
            "or choose another name"
        )
    return int(source_id)


def ensure_source(connection: Connection, spec: SourceSpec) -> int:
    """The source with this name, created or updated to `spec` (for one-shot ingests)."""
    statement = insert(Source).values(**_values(spec))
    values = _values(spec)
    del values["name"]
    statement = statement.on_conflict_do_update(index_elements=["name"], set_=values)
    return int(connection.execute(statement.returning(Source.id)).scalar_one())


def spec_of(source: Source | Any) -> SourceSpec:
    return SourceSpec(
        name=source.name,
        stac_api_url=source.stac_api_url,
        collection=source.collection,
        search=dict(source.search or {}),
        assets=tuple(source.assets or ()),
        resolution_m=source.resolution_m,
        chip_size_px=source.chip_size_px,
        overlap_px=source.overlap_px,
        poll_every_s=source.poll_every_s,
    )


def get_source(connection: Connection, name: str) -> Any:
    row = connection.execute(select(Source.__table__).where(Source.name == name)).one_or_none()
    if row is None:
        known = connection.execute(select(Source.name).order_by(Source.name)).scalars().all()
        raise SourceSettingsError(
            f"no source named {name!r}; known sources: {', '.join(known) or 'none'} "
            "(`geomelt source add` registers one)"
        )
    return row


def list_sources(connection: Connection) -> list[Any]:
    return list(connection.execute(select(Source.__table__).order_by(Source.name)).all())


def remove_source(connection: Connection, name: str) -> int:
    """Delete the source with its scenes and chips; returns the number of scenes removed."""
    source = get_source(connection, name)
    scenes = connection.execute(
        select(func.count()).select_from(Scene).where(Scene.source_id == source.id)
    ).scalar_one()
    connection.execute(delete(Source).where(Source.id == source.id))
    return int(scenes)


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
    by_state: dict[str, int] = dict(
        connection.execute(
            select(Scene.state, func.count())
            .where(Scene.source_id == source.id)
            .group_by(Scene.state)
        ).all()
    )
    chips: dict[str, int] = dict(
        connection.execute(
            select(Model.name + "@" + Model.version, func.count())
            .select_from(Chip)
            .join(Scene, Scene.id == Chip.scene_id)
            .join(Model, Model.id == Chip.model_id)
            .where(Scene.source_id == source.id)
            .group_by(Model.name, Model.version)
        ).all()
    )
    skipped = connection.execute(
        select(func.coalesce(func.sum(Scene.chips_skipped), 0)).where(Scene.source_id == source.id)
    ).scalar_one()
    failures = connection.execute(
        select(Scene.item_id, Scene.attempts, Scene.last_error)
        .where(Scene.source_id == source.id, Scene.state == "failed")
        .order_by(Scene.updated_at.desc())
        .limit(max_failures)
    ).all()
    return SourceStatus(
        name=source.name,
        last_polled_at=source.last_polled_at,
        watermark=source.watermark,
        last_error=source.last_error,
        scenes_by_state={state: int(n) for state, n in by_state.items()},
        chips_by_model={key: int(n) for key, n in chips.items()},
        chips_skipped=int(skipped),
        failures=[(item, int(attempts), reason or "") for item, attempts, reason in failures],
    )
