"""Keyset pages of search results: sort keys, one page's SELECT (optionally over a fused
ranking), and the sort values a next-page token carries; never OFFSET."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    text,
)

from ..models import Chip, Model, Scene
from .filters import QUERYABLES, InvalidFilter, SqlExpression, item_id_expression
from .where import chips_and_scenes

__all__ = ["Ranked", "SortKey", "page_select", "sort_key", "sort_values"]

# Sort sentinels for NULLs, so keyset comparisons never meet a NULL.
_NULL_SENTINEL = {
    "datetime": dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    "number": -1e308,
    "integer": -(2**62),
    "string": "",
}


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY term: a queryable (or `search:score`) and a direction."""

    field: str
    descending: bool


@dataclass(frozen=True)
class Ranked:
    """A fused ranking to page over: chip ids with their scores, best first."""

    chip_ids: Sequence[int]
    scores: Sequence[float]
    text_ranks: Sequence[float | None]
    query_vector: np.ndarray[Any, Any]
    dim: int


def sort_key(name: str, *, ranked: bool) -> SortKey:
    """Validate a sort field (with or without `properties.`, `+`/`-` already removed)."""
    field = name[len("properties.") :] if name.startswith("properties.") else name
    if field == "search:score":
        if not ranked:
            raise InvalidFilter("sortby: 'search:score' needs a ranked search (q or similar_to)")
        return SortKey(field, True)
    queryable = QUERYABLES.get(field)
    if queryable is None or not queryable.sortable:
        sortable = sorted(k for k, v in QUERYABLES.items() if v.sortable)
        raise InvalidFilter(f"sortby: cannot sort by {name!r}; sortable: {', '.join(sortable)}")
    return SortKey(field, False)


def _sort_expression(field: str, ranked_table: Any) -> tuple[ColumnElement[Any], str]:
    if field == "search:score":
        return ranked_table.c.score, "number"
    queryable = QUERYABLES[field]
    sentinel = _NULL_SENTINEL[queryable.kind]
    return func.coalesce(queryable.expression, literal(sentinel)), queryable.kind


def page_select(
    where: Sequence[ColumnElement[bool]],
    sort: Sequence[SortKey],
    *,
    after: Sequence[Any] | None,
    limit: int,
    ranked: Ranked | None = None,
) -> Select[Any]:
    """One page of items ordered by `sort` then id; `after` = the last row's sort values."""
    columns: list[Any] = [
        Chip.id.label("chip_id"),
        item_id_expression().label("item_id"),
        Scene.collection,
        Scene.item_id.label("source_item_id"),
        Scene.item.label("source_item"),
        Chip.datetime,
        Chip.geometry,
        Chip.caption,
        Chip.row,
        Chip.col,
        Chip.valid_fraction,
        Chip.mean_brightness,
        Chip.created_at,
        Chip.thumbnail_media_type,
        # The chip's pixel window on the scene's grid: its items' proj:shape and proj:transform.
        Chip.window_x_px,
        Chip.window_y_px,
        Chip.window_width_px,
        Chip.window_height_px,
        Model.name.label("model_name"),
        Model.version.label("model_version"),
    ]
    source = chips_and_scenes().join(Model.__table__, Model.id == Chip.model_id)
    ranked_table = None
    if ranked is not None:
        ranked_table = _ranked_table(ranked)
        source = source.join(ranked_table, ranked_table.c.chip_id == Chip.id)
        query_vector = cast(
            bindparam("query_vector", ranked.query_vector, HALFVEC()), HALFVEC(ranked.dim)
        )
        distance = cast(Chip.embedding, HALFVEC(ranked.dim)).cosine_distance(query_vector)
        columns += [
            ranked_table.c.score,
            ranked_table.c.text_rank,
            (1 - distance).label("vector_score"),
        ]
    keys: list[tuple[SqlExpression, str, bool]] = []
    for key in sort:
        expression, kind = _sort_expression(key.field, ranked_table)
        keys.append((expression, kind, key.descending))
    keys.append((item_id_expression(), "string", False))
    keys.append((Chip.id, "integer", False))
    columns += [expression.label(f"sort_{i}") for i, (expression, _, _) in enumerate(keys)]
    statement = select(*columns).select_from(source).where(*where)
    if after is not None:
        statement = statement.where(_keyset(keys, after))
    order = [expression.desc() if desc else expression.asc() for expression, _, desc in keys]
    return statement.order_by(*order).limit(limit)


def sort_values(row: Any, count: int) -> list[Any]:
    """The JSON-safe sort values of a page row (for the next-page token)."""
    values = []
    for i in range(count + 2):
        value = getattr(row, f"sort_{i}")
        values.append(value.isoformat() if isinstance(value, dt.datetime) else value)
    return values


def _keyset(keys: Sequence[tuple[SqlExpression, str, bool]], after: Sequence[Any]) -> Any:
    if len(after) != len(keys):
        raise InvalidFilter("token: does not match this query's sort order")
    bound = [_bind_sort_value(value, kind) for (_, kind, _), value in zip(keys, after, strict=True)]
    alternatives = []
    for i, (expression, _, descending) in enumerate(keys):
        equal = [keys[j][0] == bound[j] for j in range(i)]
        beyond = expression < bound[i] if descending else expression > bound[i]
        alternatives.append(and_(*equal, beyond))
    return or_(*alternatives)


def _bind_sort_value(value: Any, kind: str) -> Any:
    try:
        if kind == "datetime":
            return bindparam(None, dt.datetime.fromisoformat(str(value)), unique=True)
        if kind in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(value)
            return bindparam(
                None, value, type_=Float if kind == "number" else BigInteger, unique=True
            )
        return bindparam(None, str(value), type_=Text, unique=True)
    except (TypeError, ValueError) as exc:
        raise InvalidFilter("token: malformed sort key") from exc


def _ranked_table(ranked: Ranked) -> Any:
    statement = text(
        "SELECT * FROM unnest(CAST(:ranked_ids AS bigint[]), CAST(:ranked_scores AS float8[]), "
        "CAST(:ranked_text AS float8[])) AS r(chip_id, score, text_rank)"
    ).bindparams(
        ranked_ids=list(ranked.chip_ids),
        ranked_scores=list(ranked.scores),
        ranked_text=list(ranked.text_ranks),
    )
    return statement.columns(chip_id=BigInteger, score=Float, text_rank=Float).subquery("ranked")
