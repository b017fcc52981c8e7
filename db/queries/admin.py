"""Administrative writes behind API keys: API keys, re-index and delete (sources: db/sources.py).

Constraint violations become `Conflict` in `unit_of_work`, not here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, select, update

from ..errors import NotFound
from ..models import ApiKey, Chip, Scene
from .filters import parse_chip_item_id

__all__ = [
    "create_api_key",
    "delete_collection",
    "delete_item",
    "find_api_key",
    "list_api_keys",
    "reindex",
    "revoke_api_key",
]


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
    return int(
        connection.execute(
            cast(Table, ApiKey.__table__)
            .insert()
            .values(name=name, prefix=prefix, secret_hash=secret_hash, scopes=scopes)
            .returning(ApiKey.id)
        ).scalar_one()
    )


def find_api_key(connection: Connection, prefix: str) -> Any:
    """The active key row with this prefix, or None."""
    return connection.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.secret_hash, ApiKey.scopes).where(
            ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None)
        )
    ).first()


def list_api_keys(connection: Connection) -> list[dict[str, Any]]:
    """Every key, revoked ones too (never the secret's hash): name, prefix, scopes, dates."""
    rows = connection.execute(
        select(
            ApiKey.name, ApiKey.prefix, ApiKey.scopes, ApiKey.created_at, ApiKey.revoked_at
        ).order_by(ApiKey.created_at, ApiKey.name)
    )
    return [dict(row._mapping) for row in rows]


def revoke_api_key(connection: Connection, name: str) -> None:
    result = connection.execute(
        update(ApiKey)
        .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        .values(revoked_at=dt.datetime.now(dt.UTC))
    )
    if result.rowcount == 0:
        raise NotFound(f"API key {name!r}: no active key of that name")
