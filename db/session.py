"""Engines and units of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine

__all__ = ["create_db_engine", "unit_of_work"]


def create_db_engine(url: str, *, pool_size: int = 5) -> Engine:
    return create_engine(url, pool_size=pool_size, pool_pre_ping=True)


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back if it raises.

    `SET LOCAL` settings made inside (e.g. `hnsw.ef_search`) end with it.
    """
    with engine.begin() as connection:
        yield connection
