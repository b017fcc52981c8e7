"""Administrative writes behind API keys: sources, API keys, re-index and delete."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound
from ..models import ApiKey, Chip, Scene, Source
from .filters import parse_chip_item_id

__all__ = [
    "SOURCE_FIELDS",
    "create_api_key",
    "create_source",
    "delete_collection",
    "delete_item",
    "delete_source",
    "find_api_key",
    "get_source",
    "list_sources",
    "reindex",
    "revoke_api_key",
    "update_source",
]

SOURCE_FIELDS = (
    "name",
    "stac_api_url",
    "collection",
    "search",
    "assets",
    "resolution_m",
    "chip_size_px",
    "overlap_px",
    "poll_every_s",
)
_SOURCE_COLUMNS = (
    Source.id,
    *(getattr(Source, f) for f in SOURCE_FIELDS),
    Source.watermark,
    Source.last_polled_at,
    Source.last_error,
    Source.created_at,
)


def _source_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def create_source(connection: Connection, values: dict[str, Any]) -> dict[str, Any]:
    try:
        with connection.begin_nested():
            row = connection.execute(
                cast(Table, Source.__table__).insert().values(**values).returning(*_SOURCE_COLUMNS)
            ).one()
    except IntegrityError as exc:
        raise Conflict(f"source {values.get('name')!r}: exists or breaks a constraint") from exc
    return _source_dict(row)


def list_sources(connection: Connection) -> list[dict[str, Any]]:
    return [
        _source_dict(r) for r in connection.execute(select(*_SOURCE_COLUMNS).order_by(Source.id))
    ]


def get_source(connection: Connection, source_id: int) -> dict[str, Any]:
    row = connection.execute(select(*_SOURCE_COLUMNS).where(Source.id == source_id)).first()
    if row is None:
        raise NotFound(f"source {source_id}: no such source")
    return _source_dict(row)


def update_source(connection: Connection, source_id: int, values: dict[str, Any]) -> dict[str, Any]:
    try:
        with connection.begin_nested():
            row = connection.execute(
                update(Source)
                .where(Source.id == source_id)
                .values(**values)
                .returning(*_SOURCE_COLUMNS)
            ).first()
    except IntegrityError as exc:
        raise Conflict(f"source {source_id}: the update breaks a constraint") from exc
    if row is None:
        raise NotFound(f"source {source_id}: no such source")
    return _source_dict(row)


def delete_source(connection: Connection, source_id: int) -> None:
    """Deletes the source with its scenes and chips (ON DELETE CASCADE)."""
    if connection.execute(delete(Source).where(Source.id == source_id)).rowcount == 0:
        raise NotFound(f"source {source_id}: no such source")


def reindex(connection: Connection, *, source_id: int | None, collection: str | None) -> int:
    """Send scenes back to `pending` so that workers chip and embed them again."""
    statement = update(Scene).values(
        state="pending", attempts=0, last_error=None, updated_at=func.now()
    )
    if source_id is not None:
        statement = statement.where(Scene.source_id == source_id)
    if collection is not None:
        statement = statement.where(Scene.collection == collection)
    return int(connection.execute(statement).rowcount)


def delete_collection(connection: Connection, collection: str) -> int:
    """Delete the scenes (and so the chips) of a collection; returns the number of scenes."""
    count = connection.execute(delete(Scene).where(Scene.collection == collection)).rowcount
    if count == 0:
        raise NotFound(f"collection {collection!r}: no such collection")
    return int(count)


def delete_item(connection: Connection, *, collection: str, item_id: str) -> int:
    """Delete the chips (of every model) behind a chip item id."""
    key = parse_chip_item_id(item_id)
    if key is None:
        raise NotFound(f"item {item_id!r}: no such item in {collection!r}")
    scene_ids = select(Scene.id).where(Scene.collection == collection, Scene.item_id == key[0])
    count = connection.execute(
        delete(Chip).where(Chip.scene_id.in_(scene_ids), Chip.row == key[1], Chip.col == key[2])
    ).rowcount
    if count == 0:
        raise NotFound(f"item {item_id!r}: no such item in {collection!r}")
    return int(count)


def create_api_key(
    connection: Connection, *, name: str, prefix: str, secret_hash: str, scopes: list[str]
) -> int:
    try:
        with connection.begin_nested():
            return int(
                connection.execute(
                    cast(Table, ApiKey.__table__)
                    .insert()
                    .values(name=name, prefix=prefix, secret_hash=secret_hash, scopes=scopes)
                    .returning(ApiKey.id)
                ).scalar_one()
            )
    except IntegrityError as exc:
        raise Conflict(f"API key {name!r}: a key of that name exists; pick another name") from exc


def find_api_key(connection: Connection, prefix: str) -> Any:
    """The active key row with this prefix, or None."""
    return connection.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.secret_hash, ApiKey.scopes).where(
            ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None)
        )
    ).first()


def revoke_api_key(connection: Connection, name: str) -> None:
    result = connection.execute(
        update(ApiKey)
        .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        .values(revoked_at=dt.datetime.now(dt.UTC))
    )
    if result.rowcount == 0:
        raise NotFound(f"API key {name!r}: no active key of that name")
