"""Periodic upkeep of the archive's physical layout."""

from __future__ import annotations

from sqlalchemy import Engine, text

__all__ = ["order_chips_spatially"]


def order_chips_spatially(engine: Engine) -> None:
    """Rewrite `chips` in spatial order: (model, Z-order of the bbox centre), migration 0006.

    Chips written since the last run sit at the end of the heap in arrival order; a spatial
    filter over them reads scattered pages again. `CLUSTER` restores the order and rebuilds
    every index of the table (HNSW included) under an exclusive lock: run it in a quiet hour,
    e.g. after a large backfill.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("CLUSTER chips USING ix_chips_spatial_order"))
        connection.execute(text("ANALYZE chips"))
