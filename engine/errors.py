"""The one map from exceptions to STAC-style JSON errors (`{"code", "description"}`).

Bad input is a 4xx naming the parameter; anything unexpected is a 500 `ServerError` whose
description carries a request id that is also logged with the traceback. Never a bare 500.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DataError

from geomelt.db import (
    RETRY_AFTER_S,
    Conflict,
    DatabaseUnavailable,
    DbError,
    InvalidSource,
    MigrationRequired,
    NotFound,
)
from geomelt.db.queries.filters import InvalidFilter

__all__ = [
    "ApiError",
    "Forbidden",
    "InvalidParameter",
    "ItemNotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "exception_handlers",
]

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API reports to the client as is."""

    status_code = 400
    code = "BadRequest"


class InvalidParameter(ApiError):
    """A request parameter is malformed or out of range; the message names it."""

    code = "InvalidParameterValue"


class ItemNotFound(ApiError):
    """The collection or item does not exist."""

    status_code = 404
    code = "NotFound"


class PayloadTooLarge(ApiError):
    """A body, upload or geometry is larger than the configured maximum."""

    status_code = 413
    code = "PayloadTooLarge"


class UnsupportedMediaType(ApiError):
    """The request body is not of a media type this endpoint accepts."""

    status_code = 415
    code = "UnsupportedMediaType"


class Unauthorized(ApiError):
    """No valid API key was sent; send `Authorization: Bearer <key>`."""

    status_code = 401
    code = "Unauthorized"


class Forbidden(ApiError):
    """The API key lacks the scope this endpoint needs."""

    status_code = 403
    code = "Forbidden"


class ServiceUnavailable(ApiError):
    """The database or the model is not ready yet."""

    status_code = 503
    code = "ServiceUnavailable"


_HTTP_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    503: "ServiceUnavailable",
}


def _error(
    status: int, code: str, description: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        {"code": code, "description": description},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return _error(exc.status_code, exc.code, str(exc) or (exc.__doc__ or "").strip(), headers)


def _db_error(request: Request[Any, Any, Any], exc: DbError) -> Response[Any]:
    if isinstance(exc, InvalidFilter | InvalidSource):
        return _error(400, "InvalidParameterValue", str(exc))
    if isinstance(exc, NotFound):
        return _error(404, "NotFound", str(exc))
    if isinstance(exc, Conflict):
        return _error(409, "Conflict", str(exc))
    if isinstance(exc, DatabaseUnavailable):
        # The service resumes by itself once the database is back (db.session).
        description = f"{exc}; retry in {RETRY_AFTER_S} s"
        return _error(503, "ServiceUnavailable", description, {"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(exc, MigrationRequired):
        return _error(503, "ServiceUnavailable", str(exc))
    return _server_error(request, exc)


def _data_error(_: Request[Any, Any, Any], exc: DataError) -> Response[Any]:
    # PostgreSQL refused a value the request carried (an integer beyond its column, a NUL
    # character): bad input that got past validation, so a 400 rather than a 500.
    lines = str(exc.orig).strip().splitlines()
    return _error(
        400,
        "InvalidParameterValue",
        f"a value in the request does not fit the database ({lines[0] if lines else 'invalid'}); "
        "check the sizes of numbers and remove NUL characters",
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return _server_error(request, exc)
    detail = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        fields = [
            str(e.get("key") or e.get("source") or "") for e in exc.extra if isinstance(e, dict)
        ]
        detail = f"{', '.join(f for f in fields if f) or 'request'}: {exc.detail}"
    code = _HTTP_CODES.get(exc.status_code, "BadRequest")
    return _error(exc.status_code, code, str(detail), dict(exc.headers or {}) or None)


def _server_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request_id = uuid.uuid4().hex[:12]
    logger.error(
        "request %s %s failed (id %s)", request.method, request.url.path, request_id, exc_info=exc
    )
    return _error(500, "ServerError", f"unexpected server error; request id {request_id}")


exception_handlers: ExceptionHandlersMap = {
    ApiError: _api_error,
    DbError: _db_error,
    DataError: _data_error,
    HTTPException: _http_error,
    Exception: _server_error,
}
