"""What the API needs to run, built by the CLI (settings are never read here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from geomelt.db.queries.search import EXACT_THRESHOLD

__all__ = ["AppDeps", "EngineConfig"]


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    database_url: str
    # HMAC key of page tokens; a new secret invalidates all outstanding tokens.
    secret: bytes
    # Absolute base URL for links behind a proxy; None: from the request (and X-Forwarded-*).
    base_url: str | None = None
    # Peers whose X-Forwarded-Host/-Proto are believed; from anyone else they are ignored (a
    # client could point every link of a response at another site).
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    title: str = "GeoMELT Search"
    default_limit: int = 10
    max_limit: int = 1000
    max_q_length: int = 1000
    max_similar_to: int = 32
    rocchio_beta: float = 0.5
    q_alpha: float = 0.5  # weight of the text vector when q and similar_to are combined
    rrf_k: int = 60
    # Ranked searches fuse the top `rank_depth` of each list; deeper results are not returned.
    rank_depth: int = 1000
    exact_threshold: int = EXACT_THRESHOLD  # measured by benchmarks.search_scale
    count_threshold: int = 10_000  # numberMatched only when the estimate is below this
    token_ttl_s: int = 24 * 3600
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 10_000_000
    max_image_pixels: int = 50_000_000
    reads_require_key: bool = False
    # Whether sources registered over HTTP may point at loopback, link-local or private hosts
    # (off: a write key must not make this server fetch its own network; geomelt.db.sources).
    allow_private_sources: bool = False
    # Streaming replicas searches run on (db.replicas); one behind by more than
    # max_replica_lag_s is skipped until it catches up.
    read_urls: tuple[str, ...] = ()
    max_replica_lag_s: float = 5.0
    # Collections ingested from a local folder -> the folder their assets' files are served
    # from (/files/{collection}/{name}); built by the CLI from the demo's work folders.
    local_files: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AppDeps:
    """`load_model()` is called once by the app's lifespan (tests pass a preloaded model)."""

    config: EngineConfig
    load_model: Callable[[], Any]
