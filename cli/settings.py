"""Settings: the only place that reads GEOMELT_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

import click
import platformdirs

__all__ = ["DEFAULT_MODEL", "Settings"]

# The model of `geomelt serve`, `ingest`, `worker` and `demo` when none is named (the trained
# weights shipped in the package, model/weights/); the one place to change it.
DEFAULT_MODEL = "geomelt-small"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What every geomelt process needs to know; built once in the entry point."""

    # None means: start or attach to the embedded server in data_dir.
    database_url: str | None
    data_dir: Path
    # Streaming replicas of that database that serve searches (writes and the job queue stay
    # on the primary); a replica behind by more than max_replica_lag_s is skipped meanwhile.
    database_read_urls: tuple[str, ...] = ()
    max_replica_lag_s: float = 5.0
    # API (geomelt serve): page-token HMAC secret (None: random per start), public base URL
    # behind a proxy, the model whose embeddings are searched, whether reads need a key.
    api_secret: str | None = None
    api_base_url: str | None = None
    api_model: str = DEFAULT_MODEL
    api_reads_require_key: bool = False
    # Proxies whose X-Forwarded-Host/-Proto the API believes (none: the headers are ignored).
    api_trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # Whether sources may point at loopback, link-local or private hosts (geomelt.db.sources);
    # `geomelt demo` allows them for its own loopback servers whatever this says.
    allow_private_sources: bool = False
    # `geomelt demo` without arguments: a folder of GeoTIFFs to ingest and serve.
    demo_data: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = env.get("GEOMELT_DATA_DIR") or platformdirs.user_data_dir("geomelt-search")
        return cls(
            database_url=_normalise_url(env.get("GEOMELT_DATABASE_URL") or None),
            data_dir=Path(data_dir).expanduser(),
            database_read_urls=tuple(
                _normalise_url(part.strip()) or ""
                for part in env.get("GEOMELT_DATABASE_READ_URLS", "").split(",")
                if part.strip()
            ),
            max_replica_lag_s=_seconds(
                "GEOMELT_DATABASE_MAX_REPLICA_LAG_S",
                env.get("GEOMELT_DATABASE_MAX_REPLICA_LAG_S") or "5",
            ),
            api_secret=env.get("GEOMELT_API_SECRET") or None,
            api_base_url=env.get("GEOMELT_API_BASE_URL") or None,
            api_model=env.get("GEOMELT_API_MODEL") or DEFAULT_MODEL,
            api_reads_require_key=env.get("GEOMELT_API_READS_REQUIRE_KEY", "") in ("1", "true"),
            api_trusted_proxies=_networks(env.get("GEOMELT_API_TRUSTED_PROXIES", "")),
            allow_private_sources=env.get("GEOMELT_ALLOW_PRIVATE_SOURCES", "") in ("1", "true"),
            demo_data=Path(env["GEOMELT_DEMO_DATA"]).expanduser()
            if env.get("GEOMELT_DEMO_DATA")
            else None,
        )

    @property
    def embedded_dir(self) -> Path:
        return self.data_dir / "postgres"


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise click.UsageError(f"{name}={text!r}: give a number of seconds >= 0, e.g. 5")
    return value


def _networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return tuple(
            ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
        )
    except ValueError as exc:
        raise click.UsageError(
            f"GEOMELT_API_TRUSTED_PROXIES={text!r}: {exc}; give comma-separated IP addresses or "
            "networks, e.g. 127.0.0.1,10.0.0.0/8"
        ) from exc


def _normalise_url(url: str | None) -> str | None:
    # Users paste libpq URLs; SQLAlchemy needs the psycopg 3 driver named.
    if url is None:
        return None
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
