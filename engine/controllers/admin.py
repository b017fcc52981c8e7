"""Write and admin endpoints behind API keys: sources CRUD, re-index, delete, API keys."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post

from geomelt.db import sources, unit_of_work
from geomelt.db.queries import admin as queries

from ..auth import require_scope

__all__ = ["AdminController", "SourcesController"]


class SourceIn(msgspec.Struct, forbid_unknown_fields=True):
    """A STAC API collection to ingest."""

    name: str
    stac_api_url: str
    collection: str
    search: dict[str, Any] = msgspec.field(default_factory=dict)
    assets: list[str] = msgspec.field(default_factory=list)
    resolution_m: float | None = None
    chip_size_px: int = 224
    overlap_px: int = 0
    poll_every_s: int | None = None


class SourcePatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Fields of a source to change; omitted fields stay as they are."""

    name: str | None = None
    stac_api_url: str | None = None
    collection: str | None = None
    search: dict[str, Any] | None = None
    assets: list[str] | None = None
    resolution_m: float | None = None
    chip_size_px: int | None = None
    overlap_px: int | None = None
    poll_every_s: int | None = None


class ReindexIn(msgspec.Struct, forbid_unknown_fields=True):
    """Which scenes to chip and embed again (all when both are omitted)."""

    source_id: int | None = None
    collection: str | None = None


def _engine(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.engine


def _allow_private_hosts(request: Request[Any, Any, Any]) -> bool:
    return bool(request.app.state.config.allow_private_sources)


_SOURCE_RULES = (
    "Checked as every source is (also on the command line): `stac_api_url` http(s) only, its "
    "host on a public address unless the server allows private ones, a name of 1-100 letters, "
    f"digits and ._:@/-, `resolution_m` in (0, {sources.MAX_RESOLUTION_M:g}], `chip_size_px` "
    f"{sources.MIN_CHIP_SIZE_PX}-{sources.MAX_CHIP_SIZE_PX}, 0 <= `overlap_px` < "
    "`chip_size_px`, `assets` none, one or three keys; 400 names the field."
)


class SourcesController(Controller):
    path = "/sources"
    tags = ("Sources (API key)",)
    guards = (require_scope("write"),)

    @post(
        "/",
        summary="Register a source",
        sync_to_thread=True,
        description=(
            "Needs a key with the `write` scope (`Authorization: Bearer gmk_...`); 409 on a "
            "duplicate name. " + _SOURCE_RULES
        ),
    )
    def create(self, request: Request[Any, Any, Any], data: SourceIn) -> dict[str, Any]:
        values = msgspec.structs.asdict(data)
        with unit_of_work(_engine(request)) as connection:
            created: dict[str, Any] = sources.create_source(
                connection, values, allow_private_hosts=_allow_private_hosts(request)
            )
        return created

    @get("/", summary="List sources", sync_to_thread=True)
    def list_all(self, request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        with unit_of_work(_engine(request)) as connection:
            listed: list[dict[str, Any]] = sources.list_sources(connection)
        return listed

    @get("/{source_id:int}", summary="Get a source", sync_to_thread=True)
    def get_one(self, request: Request[Any, Any, Any], source_id: int) -> dict[str, Any]:
        with unit_of_work(_engine(request)) as connection:
            found: dict[str, Any] = sources.get_source(connection, source_id)
        return found

    @patch(
        "/{source_id:int}",
        summary="Change a source",
        sync_to_thread=True,
        description=_SOURCE_RULES,
    )
    def change(
        self, request: Request[Any, Any, Any], source_id: int, data: SourcePatch
    ) -> dict[str, Any]:
        values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        with unit_of_work(_engine(request)) as connection:
            changed: dict[str, Any] = sources.update_source(
                connection, source_id, values, allow_private_hosts=_allow_private_hosts(request)
            )
        return changed

    @delete(
        "/{source_id:int}",
        summary="Delete a source with its scenes and chips",
        sync_to_thread=True,
        guards=[require_scope("admin")],
    )
    def remove(self, request: Request[Any, Any, Any], source_id: int) -> None:
        with unit_of_work(_engine(request)) as connection:
            sources.delete_source(connection, source_id)


class AdminController(Controller):
    path = "/admin"
    tags = ("Admin (API key)",)
    guards = (require_scope("admin"),)

    @post(
        "/reindex",
        summary="Re-index scenes",
        status_code=202,
        sync_to_thread=True,
        description="Sends the chosen scenes back to `pending`; workers chip and embed them "
        "again. Needs the `admin` scope.",
    )
    def reindex(self, request: Request[Any, Any, Any], data: ReindexIn) -> dict[str, int]:
        with unit_of_work(_engine(request)) as connection:
            count = queries.reindex(
                connection, source_id=data.source_id, collection=data.collection
            )
        return {"scenes": count}

    @delete(
        "/collections/{collection_id:str}",
        summary="Delete a collection's scenes and chips",
        sync_to_thread=True,
    )
    def delete_collection(self, request: Request[Any, Any, Any], collection_id: str) -> None:
        with unit_of_work(_engine(request)) as connection:
            queries.delete_collection(connection, collection_id)

    @delete(
        "/collections/{collection_id:str}/items/{item_id:str}",
        summary="Delete a chip",
        sync_to_thread=True,
    )
    def delete_item(
        self, request: Request[Any, Any, Any], collection_id: str, item_id: str
    ) -> None:
        with unit_of_work(_engine(request)) as connection:
            queries.delete_item(connection, collection=collection_id, item_id=item_id)

    @get(
        "/keys",
        summary="List API keys",
        sync_to_thread=True,
        description="Names, prefixes, scopes, creation and revocation times (never secrets).",
    )
    def list_keys(self, request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        with unit_of_work(_engine(request)) as connection:
            keys: list[dict[str, Any]] = queries.list_api_keys(connection)
        return keys

    @delete(
        "/keys/{name:str}",
        summary="Revoke an API key",
        sync_to_thread=True,
        description="The key stops working at once; 404 if no active key has that name.",
    )
    def revoke_key(self, request: Request[Any, Any, Any], name: str) -> None:
        with unit_of_work(_engine(request)) as connection:
            queries.revoke_api_key(connection, name)
