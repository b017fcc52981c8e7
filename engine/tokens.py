"""Opaque, signed page tokens: base64url(JSON) + "." + base64url(HMAC-SHA256)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

from .errors import InvalidParameter

__all__ = ["decode_token", "encode_token", "fingerprint"]

_VERSION = 1


def fingerprint(query: dict[str, Any]) -> str:
    """A stable hash of the normalised query (token, limit and fields excluded by the caller)."""
    canonical = json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_token(secret: bytes, *, keys: list[Any], query_fingerprint: str, returned: int) -> str:
    payload = {
        "v": _VERSION,
        "k": keys,
        "fp": query_fingerprint,
        "n": returned,
        "t": int(time.time()),
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    signature = hmac.new(secret, body, hashlib.sha256).digest()[:16]
    return f"{_b64(body)}.{_b64(signature)}"


def decode_token(
    secret: bytes, token: str, *, query_fingerprint: str, ttl_s: int
) -> tuple[list[Any], int]:
    """(sort values of the last row, items returned so far); InvalidParameter if not ours/stale."""
    try:
        body_text, signature_text = token.split(".")
        body, signature = _unb64(body_text), _unb64(signature_text)
    except (ValueError, binascii.Error) as exc:
        raise InvalidParameter("token: malformed; pass the token of a next link unchanged") from exc
    expected = hmac.new(secret, body, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(signature, expected):
        raise InvalidParameter("token: bad signature; pass the token of a next link unchanged")
    payload = json.loads(body)
    if payload.get("v") != _VERSION or not isinstance(payload.get("k"), list):
        raise InvalidParameter("token: unsupported version; restart the search")
    if payload.get("fp") != query_fingerprint:
        raise InvalidParameter(
            "token: belongs to a different query; send the same parameters as the first page"
        )
    if time.time() - int(payload.get("t", 0)) > ttl_s:
        raise InvalidParameter("token: expired; restart the search")
    return payload["k"], int(payload.get("n", 0))
