"""The search page end to end in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against real uvicorn over a database seeded through the real ingestion path."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pystac_client import Client

CHROMIUM = "/usr/bin/chromium"
# A copy of the screenshot outside pytest's tmp folders, for people to look at.
SHARED_SCREENSHOT = Path("/tmp/geomelt-demo-screenshot.png")  # noqa: S108 - reported path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def _result_ids(page: Page) -> list[str]:
    return page.locator("#results .result").evaluate_all("cards => cards.map(c => c.dataset.id)")


def _wait_for_search(page: Page) -> None:
    page.wait_for_function("!document.body.hasAttribute('aria-busy')")


def test_page_search_more_like_this_dates_area_and_zoom(
    browser: Browser, live_server: str, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None
    )
    page.on(
        "response",
        lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
    )

    page.goto(f"{live_server}/app")
    # First view: the newest chips of the whole data extent, with footprints and thumbnails.
    expect(page.locator("#results .result").first).to_be_visible(timeout=30_000)
    expect(page.locator("#status")).to_contain_text("newest first")
    assert page.locator(".leaflet-overlay-pane path").count() >= page.locator(".result").count()
    expect(page.locator("#model-label")).to_contain_text("tiny-random")

    # A natural-language query: ranked results with caption, score and a loaded thumbnail.
    page.fill("#q", "houses and roads")
    page.click("#search-button")
    expect(page.locator("#status")).to_contain_text("ranked by relevance")
    _wait_for_search(page)
    cards = page.locator("#results .result")
    assert cards.count() >= 5
    scores = [float(s.split()[1]) for s in page.locator(".result .score").all_inner_texts()]
    assert len(scores) == cards.count()
    assert scores == sorted(scores, reverse=True)
    assert all(c.strip() for c in page.locator(".result .caption").all_inner_texts())
    page.wait_for_function(
        "[...document.querySelectorAll('.result img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator(".leaflet-image-layer").count() == cards.count()
    item_href = page.locator(".result a", has_text="STAC item").first.get_attribute("href")
    assert item_href is not None
    with urllib.request.urlopen(item_href, timeout=10) as response:  # noqa: S310 - loopback
        item = json.load(response)
    assert item["type"] == "Feature"
    assert item["id"] == _result_ids(page)[0]

    page.screenshot(path=str(tmp_path / "search.png"))

    # "More like this": ranks by similar_to; the example itself is not among the results.
    example = _result_ids(page)[0]
    page.locator(".result").first.get_by_role("button", name="More like this").click()
    expect(page.locator("#similar")).to_be_visible()
    expect(page.locator("#similar-id")).to_have_text(example)
    _wait_for_search(page)
    expect(page.locator("#results .result").first).to_be_visible()
    assert example not in _result_ids(page)
    page.click("#similar-clear")
    expect(page.locator("#similar")).to_be_hidden()

    # Date range 2019-2020: the 2012 and 2023 scenes drop out; the 2020 one stays.
    page.fill("#date-from", "2019-01-01")
    page.fill("#date-to", "2020-12-31")
    page.locator("#date-to").dispatch_event("change")
    _wait_for_search(page)
    expect(page.locator("#results .result").first).to_be_visible()
    ids = _result_ids(page)
    assert not [i for i in ids if i.startswith(("naip_nd_20120731", "s2_demmin"))], ids
    assert any(i.startswith("s2_tci_34SGA_20200318_tobruk") for i in ids), ids

    # An impossible range is an error state, not a request.
    page.fill("#date-from", "2021-01-01")
    page.locator("#date-from").dispatch_event("change")
    expect(page.locator("#status.error")).to_contain_text("start date is after the end date")
    page.fill("#date-from", "")
    page.fill("#date-to", "")
    page.locator("#date-to").dispatch_event("change")
    _wait_for_search(page)

    # Drawing a small rectangle mid-Atlantic (between the Bahamas and the Alps): empty state.
    box = page.locator("#map").bounding_box()
    assert box is not None
    centre_x, centre_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.click("#draw-button")
    expect(page.locator("#draw-hint")).to_be_visible()
    page.mouse.move(centre_x - 20, centre_y - 20)
    page.mouse.down()
    page.mouse.move(centre_x, centre_y, steps=4)
    page.mouse.move(centre_x + 20, centre_y + 20, steps=4)
    page.mouse.up()
    expect(page.locator("#clear-area")).to_be_visible()
    expect(page.locator("#status.empty")).to_contain_text("No chips match")
    assert page.locator("#results .result").count() == 0
    page.click("#clear-area")
    expect(page.locator("#results .result").first).to_be_visible()

    # Click-to-zoom: the first result's thumbnail overlay grows on the map.
    before = page.locator(".leaflet-image-layer").first.bounding_box()
    page.locator(".result .caption").first.click()
    expect(page.locator(".result.selected")).to_have_count(1)
    page.wait_for_timeout(1200)  # the fly-to animation lasts 0.6 s
    after = page.locator(".leaflet-image-layer").first.bounding_box()
    assert before is not None
    assert after is not None
    assert after["width"] > 4 * before["width"]
    screenshot = tmp_path / "zoomed.png"
    page.screenshot(path=str(screenshot))
    shutil.copyfile(screenshot, SHARED_SCREENSHOT)
    assert screenshot.stat().st_size > 20_000

    assert problems == []
    page.close()


def test_page_tile_url_and_paging_by_token(browser: Browser, live_server: str) -> None:
    page = browser.new_page()
    tiles = f"{live_server}/tiles-for-test/{{z}}/{{x}}/{{y}}.png"
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url) if "/tiles-for-test/" in r.url else None)
    page.goto(f"{live_server}/app?" + urllib.parse.urlencode({"tiles": tiles, "limit": 5}))
    expect(page.locator(".leaflet-tile").first).to_be_attached(timeout=30_000)
    assert requested
    assert all(url.endswith(".png") for url in requested)

    expect(page.locator("#results .result")).to_have_count(5, timeout=30_000)
    first_page = _result_ids(page)
    page.click("#more")
    expect(page.locator("#results .result")).to_have_count(10)
    assert _result_ids(page)[:5] == first_page
    assert len(set(_result_ids(page))) == 10
    page.close()


def test_page_assets_come_from_the_installed_packages(live_server: str) -> None:
    for path, marker in (
        ("/app/leaflet/leaflet.js", b"Leaflet 1.9.3"),
        ("/app/static/app.js", b"similar_to"),
    ):
        with urllib.request.urlopen(live_server + path, timeout=10) as response:  # noqa: S310
            assert marker in response.read()
    # The STAC landing page stays JSON at / for STAC clients such as pystac-client.
    with urllib.request.urlopen(live_server + "/", timeout=10) as response:  # noqa: S310
        assert json.load(response)["type"] == "Catalog"
    client = Client.open(live_server + "/")
    items = list(client.search(max_items=3).items())
    assert len(items) == 3
    assert all(item.assets["thumbnail"].href.startswith(live_server) for item in items)
