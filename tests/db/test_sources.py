"""Sources: one checked path for every writer (issue 19 item 12, issue 22 item 2)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from geomelt.db import Conflict, InvalidSource, NotFound, create_db_engine, unit_of_work
from geomelt.db.sources import (
    check_source,
    create_source,
    delete_source,
    ensure_source,
    get_source,
    update_source,
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


GOOD = {"name": "s2", "stac_api_url": "https://93.184.215.14/v1", "collection": "sentinel-2"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stac_api_url": "file:///etc/passwd"}, "http:// or https://"),
        ({"stac_api_url": "x"}, "http:// or https://"),
        ({"stac_api_url": "gopher://93.184.215.14/"}, "http:// or https://"),
        ({"stac_api_url": "http://169.254.169.254/latest/"}, "169.254.169.254, a loopback"),
        ({"stac_api_url": "http://127.0.0.1:8080/"}, "127.0.0.1, a loopback"),
        ({"stac_api_url": "http://localhost/"}, "a loopback, link-local, private"),
        ({"stac_api_url": "http://10.1.2.3/"}, "10.1.2.3, a loopback"),
        ({"stac_api_url": "http://[::ffff:169.254.169.254]/"}, "a loopback, link-local"),
        ({"stac_api_url": "http://[fe80::1]/"}, "fe80::1, a loopback"),
        ({"name": ""}, "source name ''"),
        ({"name": "   "}, "source name"),
        ({"collection": ""}, "collection ''"),
        ({"collection": "a\x00b"}, "control characters"),
        ({"resolution_m": -1}, "resolution_m -1"),
        ({"resolution_m": 0}, "resolution_m 0"),
        ({"resolution_m": float("nan")}, "resolution_m nan"),
        ({"chip_size_px": 2_000_000_000}, "chip_size_px 2000000000: a whole number from 16"),
        ({"chip_size_px": 8}, "chip_size_px 8"),
        ({"overlap_px": 4398046511103}, "overlap_px 4398046511103"),
        ({"chip_size_px": 64, "overlap_px": 64}, "smaller than chip_size_px"),
        ({"assets": ["red", "green"]}, "three band assets"),
        ({"assets": ["x" * 101]}, "at most 100"),
        ({"poll_every_s": 0}, "poll_every_s 0"),
        ({"search": {"limit": 5}}, "search keys ['limit']"),
        ({"search": {"bbox": [10, 5, 2, -8]}}, "search bbox"),
        ({"search": {"filter": {"op": "nope"}}}, "not valid CQL2"),
        ({"search": {"query": _nested(200)}}, "levels"),
        ({"owner": "me"}, "source fields ['owner']: unknown"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSource, match=re.escape(message)):
        check_source({**GOOD, **change}, allow_private_hosts=False)


def test_private_hosts_pass_only_when_allowed() -> None:
    local = {**GOOD, "stac_api_url": "http://127.0.0.1:8080/stac/"}
    assert check_source(local, allow_private_hosts=True)["stac_api_url"] == (
        "http://127.0.0.1:8080/stac"
    )
    # Allowing private hosts never allows other schemes.
    with pytest.raises(InvalidSource, match="http://"):
        check_source({**GOOD, "stac_api_url": "file:///etc/passwd"}, allow_private_hosts=True)
    # A public address passes without the setting.
    assert check_source(GOOD, allow_private_hosts=False)["stac_api_url"] == GOOD["stac_api_url"]


def test_writes_lookups_and_errors_through_one_owner(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        with unit_of_work(engine) as connection:
            created = create_source(connection, GOOD, allow_private_hosts=False)
        assert created["chip_size_px"] == 224
        with pytest.raises(Conflict, match="exists already"), unit_of_work(engine) as c:
            create_source(c, GOOD, allow_private_hosts=False)
        with unit_of_work(engine) as connection:
            by_name = get_source(connection, "s2")
            by_id = get_source(connection, created["id"])
            changed = update_source(connection, "s2", {"overlap_px": 32}, allow_private_hosts=False)
        assert by_name == by_id
        assert changed["overlap_px"] == 32
        # A change is checked against the stored settings it combines with.
        with (
            pytest.raises(InvalidSource, match="smaller than chip_size_px 224"),
            unit_of_work(engine) as connection,
        ):
            update_source(connection, "s2", {"overlap_px": 224}, allow_private_hosts=False)
        with (
            pytest.raises(InvalidSource, match=r"169\.254\.169\.254"),
            unit_of_work(engine) as connection,
        ):
            update_source(
                connection,
                created["id"],
                {"stac_api_url": "http://169.254.169.254/latest/"},
                allow_private_hosts=False,
            )
        with unit_of_work(engine) as connection:
            again = ensure_source(
                connection, {**GOOD, "chip_size_px": 256}, allow_private_hosts=False
            )
            assert again["id"] == created["id"]
            assert again["chip_size_px"] == 256
            assert delete_source(connection, "s2") == 0
        with (
            pytest.raises(NotFound, match="no such source; known sources: none"),
            unit_of_work(engine) as connection,
        ):
            get_source(connection, "s2")
    finally:
        engine.dispose()


def test_every_search_parameter_the_poller_passes_on_is_accepted() -> None:
    search = {
        "ids": ["S2A_1"],
        "bbox": [16.2, 48.1, 16.5, 48.3],
        "datetime": "2023-01-01/..",
        "filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]},
        "query": {"eo:cloud_cover": {"lt": 20}},
    }
    assert check_source({**GOOD, "search": search}, allow_private_hosts=False)["search"] == search
    # The poller combines the filter with its watermark as CQL2 JSON: text is refused.
    with pytest.raises(InvalidSource, match="expected a dict"):
        check_source(
            {**GOOD, "search": {"filter": "eo:cloud_cover < 20"}}, allow_private_hosts=False
        )
