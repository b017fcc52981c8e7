"""`geomelt serve`: the STAC API under uvicorn; `geomelt serve create-key | keys`: API keys."""

from __future__ import annotations

import os
import secrets

import click
import uvicorn
from litestar import Litestar

from geomelt.db import create_db_engine, unit_of_work
from geomelt.db.queries.admin import list_api_keys, revoke_api_key
from geomelt.db.replicas import check_read_url
from geomelt.engine import AppDeps, EngineConfig, create_app, issue_key
from geomelt.workers.local import local_collections

from .database import open_database
from .errors import cli_errors
from .settings import Settings

__all__ = ["app_factory", "serve_group"]

# Handed from the serving process to its uvicorn worker processes (each builds its own app).
_URL_VARIABLE = "GEOMELT_DATABASE_URL"
_SECRET_VARIABLE = "GEOMELT_API_SECRET"  # noqa: S105 - a variable name, not a secret


def _build(settings: Settings, database_url: str, secret: str) -> Litestar:
    from geomelt.model import load

    config = EngineConfig(
        database_url=database_url,
        secret=secret.encode(),
        base_url=settings.api_base_url,
        trusted_proxies=settings.api_trusted_proxies,
        reads_require_key=settings.api_reads_require_key,
        allow_private_sources=settings.allow_private_sources,
        read_urls=settings.database_read_urls,
        max_replica_lag_s=settings.max_replica_lag_s,
        # Folders `geomelt demo` ingested: their items' assets are served by this API.
        local_files=local_collections(settings.data_dir / "demo"),
    )
    app = create_app(AppDeps(config=config, load_model=lambda: load(settings.api_model)))
    return app


def app_factory() -> Litestar:
    """The app of one uvicorn worker process (`--workers N`)."""
    settings = Settings.from_env()
    if settings.database_url is None or settings.api_secret is None:
        raise click.ClickException("app_factory runs only under `geomelt serve --workers N`")
    return _build(settings, settings.database_url, settings.api_secret)


@click.group("serve", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="uvicorn worker processes.",
)
@click.pass_context
def serve_group(context: click.Context, host: str, port: int, workers: int) -> None:
    """Serve the STAC API (with natural-language and example-based search)."""
    if context.invoked_subcommand is not None:
        return
    settings = Settings.from_env()
    secret = settings.api_secret or secrets.token_urlsafe(32)
    with cli_errors():
        # A replica that cannot be reached is named now, not at the first search.
        for read_url in settings.database_read_urls:
            check_read_url(read_url)
    with cli_errors(), open_database(settings) as url:
        if workers == 1:
            # proxy_headers off: the app believes X-Forwarded-* only from trusted proxies.
            uvicorn.run(
                _build(settings, url, secret),
                host=host,
                port=port,
                log_level="info",
                proxy_headers=False,
            )
            return
        os.environ[_URL_VARIABLE] = url
        os.environ[_SECRET_VARIABLE] = secret
        uvicorn.run(
            "geomelt.cli.serve:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            proxy_headers=False,
        )


@serve_group.command("create-key")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    default=("write",),
    show_default=True,
    type=click.Choice(["read", "write", "admin"]),
    help="Repeat for several scopes.",
)
def create_key(name: str, scopes: tuple[str, ...]) -> None:
    """Create an API key NAME and print it once (only its hash is stored)."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        engine = create_db_engine(url)
        try:
            click.echo(issue_key(engine, name=name, scopes=list(scopes)))
        finally:
            engine.dispose()


@serve_group.group("keys")
def keys_group() -> None:
    """List and revoke API keys."""


@keys_group.command("list")
def list_keys() -> None:
    """Every API key: name, prefix, scopes, created, revoked (secrets are never stored)."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        engine = create_db_engine(url)
        try:
            with unit_of_work(engine) as connection:
                keys = list_api_keys(connection)
        finally:
            engine.dispose()
    for key in keys:
        revoked = key["revoked_at"]
        state = f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active"
        click.echo(
            f"{key['name']}\tgmk_{key['prefix']}_…\t{','.join(key['scopes'])}\t"
            f"created {key['created_at']:%Y-%m-%d %H:%M}\t{state}"
        )


@keys_group.command("revoke")
@click.argument("name")
def revoke_key(name: str) -> None:
    """Revoke the API key NAME; it stops working at once."""
    with cli_errors(), open_database(Settings.from_env()) as url:
        engine = create_db_engine(url)
        try:
            with unit_of_work(engine) as connection:
                revoke_api_key(connection, name)
        finally:
            engine.dispose()
    click.echo(f"API key {name} revoked")
