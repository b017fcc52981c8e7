"""X-Forwarded-Host/-Proto make links only when the peer is a configured trusted proxy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network
from typing import Any

import click
import httpx
import pytest

from geomelt.cli.settings import Settings
from geomelt.engine import AppDeps, create_app

from .conftest import make_config, serve_app

FORWARDED = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}


@contextmanager
def _server(database_url: str, model: Any, trusted: str | None) -> Iterator[str]:
    networks = (ip_network(trusted),) if trusted else ()
    config = make_config(database_url, trusted_proxies=networks)
    app = create_app(AppDeps(config=config, load_model=lambda: model))
    # As `geomelt serve`: uvicorn's own forwarded-header handling off, the app decides.
    with serve_app(app, proxy_headers=False) as base:
        yield base


def _self_href(base: str, headers: dict[str, str]) -> str:
    body = httpx.get(f"{base}/search", params={"limit": 1}, headers=headers, timeout=30).json()
    return str(next(link["href"] for link in body["links"] if link["rel"] == "self"))


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        (None, "http://127.0.0.1:"),  # the default: nobody is trusted
        ("10.0.0.0/8", "http://127.0.0.1:"),  # a proxy list that does not hold the peer
        ("127.0.0.1", "https://evil.example/search"),
        ("127.0.0.0/8", "https://evil.example/search"),
    ],
)
def test_forwarded_headers_only_from_trusted_proxies(
    database_url: str, seeded: Any, tiny_model: Any, trusted: str | None, expected: str
) -> None:
    with _server(database_url, tiny_model, trusted) as base:
        assert _self_href(base, FORWARDED).startswith(expected)
        assert _self_href(base, {}).startswith("http://127.0.0.1:")


def test_trusted_proxies_setting() -> None:
    settings = Settings.from_env({"GEOMELT_API_TRUSTED_PROXIES": " 127.0.0.1, 10.0.0.0/8,::1 "})
    assert [str(n) for n in settings.api_trusted_proxies] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
    ]
    assert Settings.from_env({}).api_trusted_proxies == ()
    with pytest.raises(click.UsageError, match=r"GEOMELT_API_TRUSTED_PROXIES='proxy\.local'"):
        Settings.from_env({"GEOMELT_API_TRUSTED_PROXIES": "proxy.local"})
