"""Look-ups by key that the API needs beside search: item ids to chip ids, chip embeddings and
thumbnails, per-collection summaries, the registered model of a checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Select, bindparam, func, literal_column, select

from ..models import Chip, Model, Scene
from .filters import InvalidFilter, parse_chip_item_id
from .where import chips_and_scenes

__all__ = [
    "chip_embeddings",
    "chip_thumbnail",
    "collection_summaries",
    "find_model_id",
    "resolve_item_ids",
]


def resolve_item_ids(
    connection: Connection, item_ids: Sequence[str], *, model_id: int, parameter: str
) -> dict[str, int]:
    """Chip ids of STAC item ids (`id` or `collection/id`); an unknown id is an InvalidFilter."""
    found: dict[str, int] = {}
    for item_id in item_ids:
        collection, _, bare = item_id.rpartition("/") if "/" in item_id else ("", "", item_id)
        key = parse_chip_item_id(bare)
        chip_id = None
        if key is not None:
            statement = (
                select(Chip.id)
                .select_from(chips_and_scenes())
                .where(
                    Chip.model_id == model_id,
                    Scene.item_id == key[0],
                    Chip.row == key[1],
                    Chip.col == key[2],
                )
                .order_by(Chip.id)
                .limit(1)
            )
            if collection:
                statement = statement.where(Scene.collection == collection)
            chip_id = connection.execute(statement).scalar()
        if chip_id is None:
            raise InvalidFilter(f"{parameter}: unknown item {item_id!r}")
        found[item_id] = int(chip_id)
    return found


def chip_embeddings(connection: Connection, chip_ids: Sequence[int]) -> np.ndarray[Any, Any]:
    """(N, D) float32 embeddings of the chips, in the given order."""
    rows: dict[int, Any] = dict(
        connection.execute(
            select(Chip.id, Chip.embedding).where(
                Chip.id.in_(bindparam("chip_ids", list(chip_ids), expanding=True))
            )
        ).all()
    )
    vectors = [rows[i].to_list() if hasattr(rows[i], "to_list") else rows[i] for i in chip_ids]
    return np.asarray(vectors, dtype=np.float32)


def chip_thumbnail(
    connection: Connection, *, model_id: int, collection: str, item_id: str
) -> tuple[bytes, str] | None:
    key = parse_chip_item_id(item_id)
    if key is None:
        return None
    row = connection.execute(
        select(Chip.thumbnail, Chip.thumbnail_media_type)
        .select_from(chips_and_scenes())
        .where(
            Chip.model_id == model_id,
            Scene.collection == collection,
            Scene.item_id == key[0],
            Chip.row == key[1],
            Chip.col == key[2],
            Chip.thumbnail.is_not(None),
        )
    ).first()
    if row is None:
        return None
    return bytes(row.thumbnail), row.thumbnail_media_type or "image/jpeg"


def collection_summaries(
    connection: Connection, *, model_id: int, collection: str | None = None
) -> list[Any]:
    """Per collection: id, chip count, spatial and temporal extent of its chips."""
    statement: Select[*tuple[Any, ...]] = (
        select(
            Scene.collection,
            func.count().label("chips"),
            func.min(Chip.datetime).label("start"),
            func.max(Chip.datetime).label("end"),
            # box[1] is the lower-left corner, box[0] the upper-right; [0] x, [1] y.
            func.min(literal_column("(chips.bbox[1])[0]")).label("west"),
            func.min(literal_column("(chips.bbox[1])[1]")).label("south"),
            func.max(literal_column("(chips.bbox[0])[0]")).label("east"),
            func.max(literal_column("(chips.bbox[0])[1]")).label("north"),
        )
        .select_from(chips_and_scenes())
        .where(Chip.model_id == model_id)
        .group_by(Scene.collection)
        .order_by(Scene.collection)
    )
    if collection is not None:
        statement = statement.where(Scene.collection == collection)
    return list(connection.execute(statement))


def find_model_id(connection: Connection, *, sha256: str) -> int | None:
    """The newest registered model with these weights."""
    return connection.execute(
        select(Model.id).where(Model.sha256 == sha256).order_by(Model.created_at.desc()).limit(1)
    ).scalar()
