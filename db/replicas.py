"""Reads past one machine: searches on streaming replicas, everything else on the primary.

A replica is used while it is reachable and not behind by more than `max_lag_s`. Lag is
measured without trusting either server's clock against the other's, and without mistaking
an idle primary for a lagging replica (`now() - pg_last_xact_replay_timestamp()` grows
whenever nobody writes): the router notes the primary's WAL position (LSN) when it first sees
a replica short of it, and the replica's lag is how long ago that was, until it replays past
that position. Checks run at most every `recheck_s` per replica, on the request that finds
them due, so a request pays two short queries at most that often.

A replica that cannot be reached, or that fails a read with an outage, is skipped and the read
runs on the next one (or on the primary); every skip is reported with its reason so the API
can say so in a header.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from .connect import check_database
from .errors import DatabaseUnavailable, redact
from .session import create_db_engine, is_outage, unit_of_work

__all__ = ["ReadRouter", "ReadSource", "check_read_url", "parse_lsn"]

T = TypeVar("T")

PRIMARY = "primary"


@dataclass(frozen=True)
class ReadSource:
    """Where a read ran (`primary` or `replica HOST:PORT`) and the replicas passed over."""

    name: str
    skipped: tuple[str, ...] = ()


@dataclass
class _Replica:
    name: str
    engine: Engine
    checked_at: float = float("-inf")
    # Why it is not used now (None: usable).
    problem: str | None = None
    # The primary's LSN the replica had not replayed when first seen, and when that was.
    pending_lsn: int | None = None
    pending_since: float = 0.0


def parse_lsn(lsn: str) -> int:
    """A PostgreSQL LSN ('16/B374D848') as a byte position."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def check_read_url(url: str, *, timeout_s: int = 5) -> None:
    """Raise a clear error naming `url` unless it reaches a usable PostgreSQL."""
    try:
        check_database(url, timeout_s=timeout_s)
    except DatabaseUnavailable as exc:
        raise DatabaseUnavailable(
            f"the read replica {redact(url)} (GEOMELT_DATABASE_READ_URLS) cannot be used: "
            f"{_reason(exc)}; start that server or remove it from GEOMELT_DATABASE_READ_URLS"
        ) from exc


class ReadRouter:
    """Runs read-only units of work on a replica when one is fit, else on the primary."""

    def __init__(
        self,
        primary: Engine,
        replica_urls: Sequence[str],
        *,
        max_lag_s: float,
        recheck_s: float = 1.0,
        pool_size: int = 5,
    ) -> None:
        self.primary = primary
        self.max_lag_s = max_lag_s
        self.recheck_s = recheck_s
        self._replicas = [
            _Replica(
                name=f"replica {_host_port(url)}",
                # A dead replica must be skipped in seconds, not after the OS's TCP timeout.
                engine=create_db_engine(url, pool_size=pool_size, connect_timeout_s=2),
            )
            for url in replica_urls
        ]
        self._turn = itertools.count()
        self._lock = threading.Lock()

    @property
    def has_replicas(self) -> bool:
        return bool(self._replicas)

    def run(self, work: Callable[[Connection], T]) -> tuple[T, ReadSource]:
        """`work(connection)` in one transaction on the first fit replica (round robin), or on
        the primary; a replica that fails with an outage is skipped and the work runs again."""
        skipped: list[str] = []
        for replica in self._candidates(skipped):
            try:
                with unit_of_work(replica.engine) as connection:
                    result = work(connection)
            except DatabaseUnavailable as exc:
                self._set_problem(replica, f"unreachable: {_reason(exc)}")
                skipped.append(f"{replica.name} (unreachable)")
                continue
            return result, ReadSource(replica.name, tuple(skipped))
        with unit_of_work(self.primary) as connection:
            return work(connection), ReadSource(PRIMARY, tuple(skipped))

    def dispose(self) -> None:
        for replica in self._replicas:
            replica.engine.dispose()

    # -- health -------------------------------------------------------------------------------

    def _candidates(self, skipped: list[str]) -> list[_Replica]:
        if not self._replicas:
            return []
        now = time.monotonic()
        due = [r for r in self._replicas if now - r.checked_at >= self.recheck_s]
        if due:
            self._check(due, now)
        start = next(self._turn) % len(self._replicas)
        ordered = self._replicas[start:] + self._replicas[:start]
        fit = []
        for replica in ordered:
            problem = replica.problem
            if problem is None:
                fit.append(replica)
            else:
                skipped.append(f"{replica.name} ({problem})")
        return fit

    def _check(self, replicas: list[_Replica], now: float) -> None:
        primary_lsn = self._primary_lsn()
        for replica in replicas:
            with self._lock:
                if now - replica.checked_at < self.recheck_s:
                    continue  # another request checked it meanwhile
                replica.checked_at = now
            try:
                problem = self._lag_problem(replica, primary_lsn, now)
            except DBAPIError as exc:
                if not is_outage(exc):
                    raise
                problem = f"unreachable: {_reason(exc.orig or exc)}"
            self._set_problem(replica, problem)

    def _primary_lsn(self) -> int | None:
        try:
            with self.primary.connect() as connection:
                return parse_lsn(
                    str(connection.execute(text("SELECT pg_current_wal_lsn()")).one()[0])
                )
        except DBAPIError as exc:
            if not is_outage(exc):
                raise
            # The primary is down: replicas serve what they have; lag cannot be measured.
            return None

    def _lag_problem(self, replica: _Replica, primary_lsn: int | None, now: float) -> str | None:
        with replica.engine.connect() as connection:
            in_recovery, replayed = connection.execute(
                text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()")
            ).one()
        if not in_recovery or replayed is None or primary_lsn is None:
            # Not a standby (a read URL may name the primary itself) or nothing to compare.
            replica.pending_lsn = None
            return None
        replayed_lsn = parse_lsn(str(replayed))
        if replica.pending_lsn is not None and replayed_lsn >= replica.pending_lsn:
            replica.pending_lsn = None
        if replica.pending_lsn is None:
            if replayed_lsn >= primary_lsn:
                return None
            replica.pending_lsn, replica.pending_since = primary_lsn, now
        lag_s = now - replica.pending_since
        if lag_s > self.max_lag_s:
            return f"behind by {lag_s:.1f} s, more than the {self.max_lag_s:g} s allowed"
        return None

    def _set_problem(self, replica: _Replica, problem: str | None) -> None:
        with self._lock:
            replica.problem = problem
            if problem is not None and problem.startswith("unreachable"):
                # Retry a dead replica only after the recheck interval, from now.
                replica.checked_at = time.monotonic()


def _host_port(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def _reason(error: BaseException) -> str:
    text_ = str(error).strip()
    return text_.splitlines()[0] if text_ else type(error).__name__
