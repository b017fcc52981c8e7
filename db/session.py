"""Engines and units of work; the one place where driver errors become our errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from .errors import Conflict, DatabaseUnavailable

__all__ = ["RETRY_AFTER_S", "create_db_engine", "is_outage", "unit_of_work"]

# What clients are told to wait during an outage: about what a restarted embedded server or a
# failed-over external one needs before it accepts connections again.
RETRY_AFTER_S = 5

# SQLSTATE classes of a database that is not (or no longer) there: connection exceptions (08),
# shutdown or crash restart (57P), out of connections or resources (53).
_OUTAGE_STATES = ("08", "57P", "53")


def create_db_engine(
    url: str, *, pool_size: int = 5, connect_timeout_s: int | None = None
) -> Engine:
    # pool_pre_ping: connections that outlived a restarted server are replaced on checkout, so
    # the first request after an outage is served instead of failing on a dead socket.
    connect_args = {} if connect_timeout_s is None else {"connect_timeout": connect_timeout_s}
    return create_engine(url, pool_size=pool_size, pool_pre_ping=True, connect_args=connect_args)


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back if it raises.

    `SET LOCAL` settings made inside (e.g. `hnsw.ef_search`) end with it. Driver errors leave it
    as our own: a constraint violation as `Conflict`, a lost or refused connection as
    `DatabaseUnavailable`; query code inside never matches driver errors itself.
    """
    try:
        with engine.begin() as connection:
            yield connection
    except IntegrityError as exc:
        raise Conflict(_integrity_message(exc)) from exc
    except DBAPIError as exc:
        if not is_outage(exc):
            raise
        raise DatabaseUnavailable(f"the database is unavailable ({_first_line(exc.orig)})") from exc


def is_outage(exc: DBAPIError) -> bool:
    """Whether a driver error means the database is down or unreachable (not a bad query)."""
    if exc.connection_invalidated or isinstance(exc.orig, psycopg.InterfaceError):
        return True
    if not isinstance(exc.orig, psycopg.OperationalError):
        return False
    state = exc.orig.sqlstate
    # No SQLSTATE: the failure happened before or outside a server answer (refused, reset).
    return state is None or state.startswith(_OUTAGE_STATES)


def _integrity_message(exc: IntegrityError) -> str:
    diag = getattr(exc.orig, "diag", None)
    detail = getattr(diag, "message_detail", None) or _first_line(exc.orig)
    table = getattr(diag, "table_name", None)
    where = f" in {table}" if table else ""
    return f"conflicts with an existing row{where}: {detail}"


def _first_line(error: BaseException | None) -> str:
    text = str(error or "").strip()
    return text.splitlines()[0] if text else type(error).__name__
