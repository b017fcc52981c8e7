"""`create_app(deps)`: the Litestar application (no module-level app)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.openapi import OpenAPIConfig

from geomelt.db import create_db_engine
from geomelt.db.replicas import ReadRouter

from .auth import require_scope
from .config import AppDeps
from .controllers import (
    AdminController,
    CollectionsController,
    FilesController,
    RootController,
    SearchController,
    SourcesController,
)
from .controllers.change import CellsController, ChangesController
from .controllers.docs import document_responses
from .controllers.web import WebController, web_routers
from .errors import exception_handlers
from .limits import check_request
from .service import SearchService

__all__ = ["create_app"]


def create_app(deps: AppDeps) -> Litestar:
    config = deps.config

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_db_engine(config.database_url)
        model = await anyio.to_thread.run_sync(deps.load_model)
        reads = ReadRouter(engine, config.read_urls, max_lag_s=config.max_replica_lag_s)
        app.state.engine = engine
        app.state.service = SearchService(engine, model, config, reads)
        try:
            yield
        finally:
            reads.dispose()
            engine.dispose()

    read_guard: list[Any] = [require_scope("read")]
    app = Litestar(
        route_handlers=[
            RootController,
            CollectionsController,
            FilesController,
            SearchController,
            ChangesController,
            CellsController,
            SourcesController,
            AdminController,
            WebController,
            *web_routers(),
        ],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        # gzip when the client sends Accept-Encoding: gzip (item pages are repetitive JSON);
        # not files: byte ranges of a compressed body would not be the ranges asked for.
        compression_config=CompressionConfig(
            backend="gzip", minimum_size=1000, exclude=FilesController.path
        ),
        before_request=check_request,
        guards=read_guard,
        state=_state(config),
        request_max_body_size=config.max_upload_bytes + 100_000,
        openapi_config=OpenAPIConfig(
            title=config.title,
            version="1.0.0",
            description="STAC API over GeoMELT chips, with natural-language (`q`) and "
            "example-based (`similar_to`, image upload) search.",
            path="/schema",
        ),
    )
    # Built once here and corrected in place before anything renders it.
    document_responses(app.openapi_schema, reads_require_key=config.reads_require_key)
    return app


def _state(config: Any) -> Any:
    from litestar.datastructures import State

    return State({"config": config})
