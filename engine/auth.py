"""API keys: `gmk_<prefix>_<secret>`; the database keeps the prefix and a SHA-256 of the secret.

The secret has 256 bits of entropy, so a fast hash is enough (no password-stretching needed);
comparison is constant-time. Scopes: `read` (only used when reads require a key), `write`
(sources), `admin` (re-index, delete; implies write and read).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import anyio
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from sqlalchemy import Engine

from geomelt.db import unit_of_work
from geomelt.db.queries.admin import create_api_key, find_api_key

from .errors import Forbidden, Unauthorized

__all__ = ["SCOPES", "issue_key", "require_scope"]

SCOPES = ("read", "write", "admin")
_IMPLIED = {"admin": {"admin", "write", "read"}, "write": {"write", "read"}, "read": {"read"}}


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(engine: Engine, *, name: str, scopes: list[str]) -> str:
    """Create a key and return it; it is shown once and only its hash is stored."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes {unknown or scopes}: choose from {', '.join(SCOPES)}")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    with unit_of_work(engine) as connection:
        create_api_key(
            connection, name=name, prefix=prefix, secret_hash=_hash(secret), scopes=scopes
        )
    return f"gmk_{prefix}_{secret}"


def check_key(engine: Engine, key: str, scope: str) -> None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "gmk":
        raise Unauthorized("Authorization: malformed API key; send 'Bearer gmk_...'")
    _, prefix, secret = parts
    with unit_of_work(engine) as connection:
        row = find_api_key(connection, prefix)
    if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
        raise Unauthorized("Authorization: unknown or revoked API key")
    granted = set().union(*(_IMPLIED.get(s, set()) for s in row.scopes))
    if scope not in granted:
        raise Forbidden(f"Authorization: key {row.name!r} lacks the {scope!r} scope")


def _presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.headers.get("x-api-key")


def require_scope(scope: str) -> Any:
    """A Litestar guard that needs a key with `scope`."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        state = connection.app.state
        if scope == "read" and not state.config.reads_require_key:
            return
        key = _presented_key(connection)
        if not key:
            raise Unauthorized(f"this endpoint needs an API key with the {scope!r} scope")
        await anyio.to_thread.run_sync(check_key, state.engine, key, scope)

    return guard
