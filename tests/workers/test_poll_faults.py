"""Catalog faults through a proxy in front of the real rustac server."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from geomelt.db import unit_of_work
from geomelt.workers import SourceSpec, SourceUnavailable, add_source, poll_source

from .conftest import Services
from .fixtures import Faults, fault_proxy


def _add(engine: Engine, url: str, collection: str) -> int:
    with unit_of_work(engine) as connection:
        return add_source(
            connection,
            SourceSpec(name="proxied", stac_api_url=url, collection=collection),
            allow_private_hosts=True,
        )


def test_an_item_returned_twice_across_pages_is_stored_once(
    engine: Engine, services: Services
) -> None:
    faults = Faults(repeat_first_item_on_page=2)
    with fault_proxy(services.stac_url, faults) as url:
        source_id = _add(engine, url, services.collection)
        result = poll_source(engine, source_id, enqueue=None, page_size=2)
    assert result.repeated == 1
    assert result.items == 6  # 5 distinct + the repeat
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT item_id FROM scenes")).scalars().all()
    assert sorted(rows) == sorted(item["id"] for item in services.catalog.items)


def test_a_failing_page_is_recorded_and_earlier_pages_are_kept(
    engine: Engine, services: Services
) -> None:
    faults = Faults(fail_pages={2})
    with fault_proxy(services.stac_url, faults) as url:
        source_id = _add(engine, url, services.collection)
        with pytest.raises(SourceUnavailable, match="page 2 of the search failed"):
            poll_source(engine, source_id, enqueue=None, page_size=2)
        with engine.connect() as connection:
            scenes = connection.execute(text("SELECT count(*) FROM scenes")).scalar()
            error = connection.execute(text("SELECT last_error FROM sources")).scalar()
        assert scenes == 2
        assert "page 2" in error
        assert "injected page failure" in error
        # The API recovers: the next poll stores the rest and clears the error.
        result = poll_source(engine, source_id, enqueue=None, page_size=2)
    assert result.new_or_changed == 3
    with engine.connect() as connection:
        assert connection.execute(text("SELECT last_error FROM sources")).scalar() is None


def test_an_unreachable_api_is_a_clear_error(engine: Engine) -> None:
    source_id = _add(engine, "http://127.0.0.1:9", "anything")
    with pytest.raises(SourceUnavailable, match=r"127\.0\.0\.1:9.*check the URL"):
        poll_source(engine, source_id, enqueue=None, timeout_s=2)
