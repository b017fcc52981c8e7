"""The page's "changes" mode in headless Chromium against real uvicorn over one North Dakota
field seen by NAIP in 2012, 2016 and 2020 (the shipped sample, ingested on the ground grid):
before/after pairs with their change score, a phrase, a cell's timeline, a bad range.
Screenshots are kept in pytest's tmp_path of each test (the artefacts of a run)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from geomelt.db import EmbeddedPostgres

from .conftest import ingested_database

CHROMIUM = "/usr/bin/chromium"
# One field (NAIP quarter quad m_4709963_se, EPSG:26914) at three dates: the same cells.
NAIP_FILES = (
    "naip_nd_20120731_m_4709963_se_14_5m.tif",
    "naip_nd_20160816_m_4709963_se_14_5m.tif",
    "naip_nd_20200831_m_4709963_se_14_5m.tif",
)


@pytest.fixture(scope="module")
def seeded_database(
    embedded_server: EmbeddedPostgres,
    template_database: str,
    tiny_model: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """This module's database (it replaces conftest's): the three NAIP dates of one field."""
    with ingested_database(
        NAIP_FILES,
        tmp_path_factory.mktemp("naip"),
        embedded_server=embedded_server,
        template_database=template_database,
        model=tiny_model,
    ) as database_url:
        yield database_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def _wait(page: Page) -> None:
    page.wait_for_function("!document.body.hasAttribute('aria-busy')")


def _ranges(page: Page, before: tuple[str, str], after: tuple[str, str]) -> None:
    page.fill("#before-from", before[0])
    page.fill("#before-to", before[1])
    page.fill("#after-from", after[0])
    page.fill("#after-to", after[1])


def test_changes_mode_pairs_phrase_and_timeline(
    browser: Browser, live_server: str, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    changes: list[str] = []
    page.on("request", lambda r: changes.append(r.url) if "/changes?" in r.url else None)
    page.goto(f"{live_server}/app")
    expect(page.locator("#results .result").first).to_be_visible(timeout=30_000)
    _wait(page)

    page.click("#mode-changes")
    expect(page.locator("#changes-form")).to_be_visible()
    expect(page.locator("#search-form")).to_be_hidden()
    assert page.locator("#results .result").count() == 0
    _ranges(page, ("2012-01-01", "2012-12-31"), ("2020-01-01", "2020-12-31"))
    page.click("#changes-button")
    expect(page.locator("#status")).to_contain_text("ranked by change", timeout=30_000)
    _wait(page)

    query = urllib.parse.parse_qs(urllib.parse.urlsplit(changes[-1]).query)
    assert query["before"] == ["2012-01-01/2012-12-31"]
    assert query["after"] == ["2020-01-01/2020-12-31"]
    assert "bbox" in query  # the visible map is the region
    cards = page.locator("#results .result.change")
    assert cards.count() >= 2
    # Each result is a pair: the 2012 chip and the 2020 chip of one cell, both thumbnails loaded.
    page.wait_for_function(
        "[...document.querySelectorAll('.result.change img')].every("
        "i => i.complete && i.naturalWidth > 0)"
    )
    for index in range(cards.count()):
        card = cards.nth(index)
        expect(card.locator(".pair img.thumb")).to_have_count(2)
        expect(card.locator(".chip.before b")).to_contain_text("2012-07-31")
        expect(card.locator(".chip.after b")).to_contain_text("2020-08-31")
    scores = [float(s.split()[1]) for s in page.locator(".result .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    # The page shows what the API answered for the same request.
    with urllib.request.urlopen(changes[-1], timeout=30) as response:  # noqa: S310 - loopback
        api = json.load(response)
    assert [f["id"] for f in api["features"]] == cards.evaluate_all(
        "cards => cards.map(c => c.dataset.id)"
    )
    assert scores == [round(f["properties"]["change:score"], 4) for f in api["features"]]
    assert page.locator(".leaflet-image-layer").count() == cards.count()
    page.screenshot(path=str(tmp_path / "changes.png"))

    # The map shows the after chip; pointing at the before thumbnail puts it in its place.
    first = api["features"][0]["properties"]
    overlay = page.locator(".leaflet-image-layer").first
    expect(overlay).to_have_attribute("src", first["after"]["thumbnail"])
    cards.first.locator(".chip.before img").hover()
    expect(overlay).to_have_attribute("src", first["before"]["thumbnail"])
    page.screenshot(path=str(tmp_path / "changes-before-on-map.png"))
    cards.first.locator(".chip.after img").hover()
    expect(overlay).to_have_attribute("src", first["after"]["thumbnail"])

    # A cell's timeline: every acquisition (2012, 2016, 2020) in date order, with captions.
    cell = cards.first.get_attribute("data-id")
    cards.first.get_by_role("button", name="Timeline").click()
    expect(page.locator("#timeline")).to_be_visible()
    expect(page.locator("#timeline-cell")).to_have_text(cell or "")
    entries = page.locator("#timeline-list li")
    expect(entries).to_have_count(3)
    dates = [t.split("·")[1].strip() for t in entries.locator("figcaption b").all_inner_texts()]
    assert dates == ["2012-07-31", "2016-08-16", "2020-08-31"]
    assert all(c.strip() for c in entries.locator(".caption").all_inner_texts())
    page.wait_for_function(
        "[...document.querySelectorAll('#timeline-list img')].every("
        "i => i.complete && i.naturalWidth > 0)"
    )
    page.locator("#timeline").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "timeline.png"))

    # With a phrase: ranked by how much more the after chip matches it.
    page.fill("#change-q", "bare soil field")
    page.click("#changes-button")
    expect(page.locator("#status")).to_contain_text('more they match "bare soil field" after')
    _wait(page)
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(changes[-1]).query)["q"] == [
        "bare soil field"
    ]
    expect(page.locator("#results .result.change").first).to_be_visible()

    # Overlapping ranges: the API's 400 is shown, naming the parameter.
    _ranges(page, ("2012-01-01", "2020-12-31"), ("2016-01-01", "2020-12-31"))
    page.click("#changes-button")
    expect(page.locator("#status.error")).to_contain_text("overlaps before")
    assert page.locator("#results .result").count() == 0
    # A range left empty is named before any request.
    count = len(changes)
    page.fill("#after-from", "")
    page.fill("#after-to", "")
    page.click("#changes-button")
    expect(page.locator("#status.error")).to_contain_text("After: give a date range")
    assert len(changes) == count

    # Back to search: chips again, the change results and timeline gone.
    page.click("#mode-search")
    expect(page.locator("#timeline")).to_be_hidden()
    expect(page.locator("#status")).to_contain_text("newest first")
    assert page.locator("#results .result.change").count() == 0
    assert problems == []
    page.close()
