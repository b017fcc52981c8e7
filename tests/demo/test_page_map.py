"""The map of the search page in headless Chromium against real uvicorn (tests/demo/conftest.py):
geographic context, clusters of pins, "more like this" beyond the view, "Search this area".
Screenshots are kept in pytest's tmp_path of each test (the artefacts of a run)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Request, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def _open(browser: Browser, url: str) -> tuple[Page, list[str], list[str]]:
    """A page at url, its /search requests and its script errors; waits for the first results."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    searches: list[str] = []

    def record(request: Request) -> None:
        if urllib.parse.urlsplit(request.url).path.endswith("/search"):
            searches.append(request.url)

    page.on("request", record)
    errors: list[str] = []  # script errors: each test asserts there were none
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    expect(page.locator("#results .result").first).to_be_visible(timeout=30_000)
    _wait_for_search(page)
    return page, searches, errors


def _wait_for_search(page: Page) -> None:
    page.wait_for_function("!document.body.hasAttribute('aria-busy')")


def _query(url: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)


def _pin(page: Page, rank: int) -> Locator:
    return page.locator(".leaflet-marker-pane .rank-pin").filter(has_text=re.compile(rf"^{rank}$"))


def _pin_ranks(page: Page) -> list[int]:
    return [int(t) for t in page.locator(".leaflet-marker-pane .rank-pin").all_inner_texts()]


def test_context_layer_under_chips_and_tiles(
    browser: Browser, live_server: str, tmp_path: Path
) -> None:
    tiles = f"{live_server}/tiles-for-test/{{z}}/{{x}}/{{y}}.png"
    url = f"{live_server}/app?" + urllib.parse.urlencode({"tiles": tiles})
    page, _, errors = _open(browser, url)
    context_paths = page.locator(".leaflet-context-pane path")
    expect(context_paths.first).to_be_attached(timeout=30_000)
    # Country outlines of the world: a few hundred polygons, not a placeholder.
    assert context_paths.count() > 100
    panes = {
        name: page.evaluate(
            "selector => Number(getComputedStyle(document.querySelector(selector)).zIndex)",
            f".leaflet-{name}-pane",
        )
        for name in ("context", "tile", "overlay")
    }
    # Under the configured basemap, and under the chips' thumbnails and footprints.
    assert panes["context"] < panes["tile"] < panes["overlay"], panes
    page.screenshot(path=str(tmp_path / "context-world.png"))
    page.close()
    assert errors == []


def test_context_detail_when_zoomed_in(browser: Browser, live_server: str, tmp_path: Path) -> None:
    page, _, errors = _open(browser, f"{live_server}/app")
    expect(page.locator(".leaflet-context-pane path").first).to_be_attached(timeout=30_000)
    with page.expect_response(
        lambda r: "context.geojson?bbox=" in r.url and r.status == 200, timeout=30_000
    ) as detail:
        page.locator(".result .caption").first.click()  # flies to the chip (zoom > 10)
    body = detail.value.json()
    assert body["type"] == "FeatureCollection"
    assert body["features"], "the chip lies on land: its country must be in the view"
    page.wait_for_timeout(1200)  # the fly-to animation lasts 0.6 s
    assert page.locator(".leaflet-context-pane path").count() >= 1
    page.screenshot(path=str(tmp_path / "context-zoomed.png"))
    page.close()
    assert errors == []


def test_context_endpoint_and_bad_bbox(live_server: str) -> None:
    with urllib.request.urlopen(f"{live_server}/app/context.geojson", timeout=60) as response:  # noqa: S310
        world = json.load(response)
    assert response.headers["content-type"].startswith("application/geo+json")
    assert "max-age=86400" in response.headers["cache-control"]
    assert len(world["features"]) > 200  # Natural Earth admin-0: about 250 countries
    # Vienna: the clipped view stays inside its bbox.
    url = f"{live_server}/app/context.geojson?bbox=16.2,48.1,16.5,48.3"
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
        view = json.load(response)
    coordinates = [
        point
        for feature in view["features"]
        for polygon in (
            [feature["geometry"]["coordinates"]]
            if feature["geometry"]["type"] == "Polygon"
            else feature["geometry"]["coordinates"]
        )
        for ring in polygon
        for point in ring
    ]
    assert coordinates
    assert all(
        16.2 - 1e-6 <= x <= 16.5 + 1e-6 and 48.1 - 1e-6 <= y <= 48.3 + 1e-6 for x, y in coordinates
    )
    for bad, words in (("1,2,3", "four finite numbers"), ("5,1,2,3", "min must be below max")):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{live_server}/app/context.geojson?bbox={bad}", timeout=30)  # noqa: S310
        assert caught.value.code == 400
        description = json.load(caught.value)["description"]
        assert description.startswith(f"bbox '{bad}'")
        assert words in description


def test_clusters_spread_so_every_rank_is_reachable(
    browser: Browser, live_server: str, tmp_path: Path
) -> None:
    page, _, errors = _open(browser, f"{live_server}/app")
    results = page.locator("#results .result").count()
    clusters = page.locator(".leaflet-marker-pane .cluster-pin")
    # At the first view (the whole data extent) chips of one site overlap: clusters, not pins.
    assert clusters.count() >= 1
    counts = [int(t) for t in clusters.all_inner_texts()]
    assert sum(counts) + len(_pin_ranks(page)) == results
    page.screenshot(path=str(tmp_path / "clusters.png"))

    biggest = counts.index(max(counts))
    before = set(_pin_ranks(page))
    clusters.nth(biggest).click()
    expect(page.locator(".leaflet-overlay-pane .spider-leg")).to_have_count(max(counts))
    spread = set(_pin_ranks(page)) - before
    assert len(spread) == max(counts)
    # Spread pins do not sit on each other: each can be hovered and clicked.
    boxes = [_pin(page, rank).bounding_box() for rank in sorted(spread)]
    centres = {
        (round(b["x"] + b["width"] / 2), round(b["y"] + b["height"] / 2)) for b in boxes if b
    }
    assert len(centres) == len(spread)
    page.screenshot(path=str(tmp_path / "cluster-spread.png"))

    # A spread pin selects its card; e.g. rank 2-5 hidden under rank 1 before the spread.
    rank = sorted(spread)[-1]
    _pin(page, rank).click()
    expect(page.locator(".result.selected")).to_have_count(1)
    expect(page.locator("#results .result").nth(rank - 1)).to_have_class(
        re.compile(r"\bselected\b")
    )

    # Every remaining cluster spread: every rank of the list has its own pin on the map.
    while page.locator(".leaflet-marker-pane .cluster-pin").count():
        page.locator(".leaflet-marker-pane .cluster-pin").first.click()
    assert sorted(_pin_ranks(page)) == list(range(1, results + 1))
    # A click on the empty map folds them back.
    page.mouse.click(700, 700)
    expect(page.locator(".leaflet-overlay-pane .spider-leg")).to_have_count(0)
    assert page.locator(".leaflet-marker-pane .cluster-pin").count() == clusters.count()
    page.close()
    assert errors == []


def test_more_like_this_searches_beyond_the_view(browser: Browser, live_server: str) -> None:
    page, searches, errors = _open(browser, f"{live_server}/app")
    # Zoomed to one chip, the view holds only that site.
    page.locator(".result .caption").first.click()
    page.wait_for_timeout(1200)
    page.click("#search-here")
    _wait_for_search(page)
    assert "bbox" in _query(searches[-1])
    in_view = set(page.locator("#results .result").evaluate_all("c => c.map(e => e.dataset.id)"))

    searches.clear()
    example = page.locator("#results .result").first.get_attribute("data-id")
    page.locator(".result").first.get_by_role("button", name="More like this").click()
    _wait_for_search(page)
    expect(page.locator("#status")).to_contain_text("whole archive")
    query = _query(searches[-1])
    assert "similar_to" in query
    assert "bbox" not in query
    ids = page.locator("#results .result").evaluate_all("c => c.map(e => e.dataset.id)")
    assert set(ids) - in_view - {example}, "results from beyond the view"
    # Asked for: only this view.
    searches.clear()
    page.check("#similar-in-view")
    _wait_for_search(page)
    assert "bbox" in _query(searches[-1])
    assert "similar_to" in _query(searches[-1])
    ids = page.locator("#results .result").evaluate_all("c => c.map(e => e.dataset.id)")
    assert set(ids) <= in_view
    page.close()
    assert errors == []


def test_search_this_area_only_after_the_map_moved(
    browser: Browser, live_server: str, tmp_path: Path
) -> None:
    page, searches, errors = _open(browser, f"{live_server}/app")
    page.wait_for_timeout(1500)  # any late moveend of the first view has fired
    expect(page.locator("#search-here")).to_be_hidden()
    first = _query(searches[-1])["bbox"][0]

    box = page.locator("#map").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 150, y + 80, steps=8)
    page.mouse.up()
    expect(page.locator("#search-here")).to_be_visible()
    page.screenshot(path=str(tmp_path / "search-this-area.png"))
    page.click("#search-here")
    _wait_for_search(page)
    expect(page.locator("#search-here")).to_be_hidden()
    assert _query(searches[-1])["bbox"][0] != first
    page.close()
    assert errors == []
