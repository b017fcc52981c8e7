"""Change search and cell timelines against the real embedded database and the real app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from geomelt.db import create_db_engine, unit_of_work
from geomelt.db.models import Source
from geomelt.db.queries import ChipRecord, SceneRecord, upsert_chips, upsert_scene
from geomelt.engine import AppDeps, create_app
from geomelt.workers.grid import GroundGrid
from geomelt.workers.pipeline import register_geomelt

from .conftest import make_config

GRID = GroundGrid(32614, 5.0, 224, 224)
ROWS, COLS = 2, 3
CELL_DEG = 0.01
LON0, LAT0 = -97.40, 47.00
DATES = {
    "naip_2012": dt.datetime(2012, 7, 31, tzinfo=dt.UTC),
    "naip_2012_sliver": dt.datetime(2012, 7, 31, tzinfo=dt.UTC),  # same date, overlapping
    "naip_2016": dt.datetime(2016, 8, 16, tzinfo=dt.UTC),
    "naip_2020": dt.datetime(2020, 8, 31, tzinfo=dt.UTC),
    # Dated by an interval only; ingestion stores its start as the datetime.
    "landsat_1985": dt.datetime(1985, 1, 1, tzinfo=dt.UTC),
    "undated": dt.datetime(1990, 1, 1, tzinfo=dt.UTC),
}
INTERVALS = {
    "landsat_1985": ("1985-01-01T00:00:00Z", "1985-12-31T23:59:59Z"),
    "undated": ("1990-01-01T00:00:00Z", "2025-12-31T23:59:59Z"),
}
BBOX = f"{LON0},{LAT0},{LON0 + COLS * CELL_DEG},{LAT0 + ROWS * CELL_DEG}"
NEW_BUILDINGS = "new buildings"


@dataclass(frozen=True)
class Place:
    cells: list[str]
    # Cells whose 2020 chip differs from 2012, most changed first.
    changed: list[str]
    # The cell whose 2020 chip looks like NEW_BUILDINGS.
    built: str


def _unit(vector: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _seed(database_url: str, model: Any) -> Place:
    rng = np.random.default_rng(7)
    dim = model.embedding_dim
    base = [_unit(rng.standard_normal(dim)) for _ in range(ROWS * COLS)]
    q = _unit(np.asarray(model.encode_texts([NEW_BUILDINGS])[0]))
    cells = [GRID.cell_id(4283 + r, 446 + c) for r in range(ROWS) for c in range(COLS)]
    # 2020: cell 0 replaced by something unrelated (large change), cell 1 moved towards q
    # (smaller change, but it now matches q), the rest unchanged up to noise.
    after = list(base)
    after[0] = _unit(-base[0] + 0.2 * rng.standard_normal(dim))
    after[1] = _unit(base[1] + 1.5 * q)
    engine = create_db_engine(database_url)
    try:
        with unit_of_work(engine) as connection:
            model_id = register_geomelt(connection, model)
            source_id = connection.execute(
                Source.__table__.insert()
                .values(name="naip", stac_api_url="http://127.0.0.1:1/", collection="naip")
                .returning(Source.id)
            ).scalar_one()
            for item_id, when in DATES.items():
                scene_id, _ = upsert_scene(
                    connection,
                    SceneRecord(
                        source_id=source_id,
                        collection="naip",
                        item_id=item_id,
                        item={
                            "type": "Feature",
                            "id": item_id,
                            "properties": {
                                "start_datetime": INTERVALS[item_id][0],
                                "end_datetime": INTERVALS[item_id][1],
                            }
                            if item_id in INTERVALS
                            else {},
                        },
                        datetime=when,
                        item_version="1",
                        bbox_lonlat=(LON0, LAT0, LON0 + COLS * CELL_DEG, LAT0 + ROWS * CELL_DEG),
                    ),
                )
                records = []
                for index, cell in enumerate(cells):
                    if item_id == "naip_2012_sliver" and index != 2:
                        continue  # the sliver scene sees one cell, less completely
                    if item_id in INTERVALS and index != 0:
                        continue
                    row, col = divmod(index, COLS)
                    west, south = LON0 + col * CELL_DEG, LAT0 + row * CELL_DEG
                    ring = [
                        (west, south),
                        (west + CELL_DEG, south),
                        (west + CELL_DEG, south + CELL_DEG),
                        (west, south + CELL_DEG),
                    ]
                    noise = 0.1 * _unit(rng.standard_normal(dim))
                    vector = after[index] if item_id == "naip_2020" else base[index]
                    if item_id == "naip_2012_sliver":
                        vector = -base[index]  # would look changed if it were picked
                    records.append(
                        ChipRecord(
                            scene_id=scene_id,
                            model_id=model_id,
                            row=4283 + row,
                            col=446 + col,
                            datetime=when,
                            footprint_lonlat=ring,
                            caption=f"{item_id} cell {index}",
                            embedding=_unit(vector + noise),
                            window_px=(col * 224, row * 224, 224, 224),
                            valid_fraction=0.6 if item_id == "naip_2012_sliver" else 1.0,
                            thumbnail=b"\xff\xd8jpeg",
                            thumbnail_media_type="image/jpeg",
                            cell_id=cell,
                        )
                    )
                upsert_chips(connection, records)
    finally:
        engine.dispose()
    return Place(cells, [cells[0], cells[1]], cells[1])


@pytest.fixture
def place_client(database_url: str, tiny_model: Any) -> Iterator[tuple[TestClient[Any], Place]]:
    place = _seed(database_url, tiny_model)
    app = create_app(AppDeps(config=make_config(database_url), load_model=lambda: tiny_model))
    with TestClient(app) as client:
        yield client, place


def test_change_search_ranks_the_changed_cells_first_with_both_chips(
    place_client: tuple[TestClient[Any], Place],
) -> None:
    client, place = place_client
    response = client.get(
        "/changes", params={"bbox": BBOX, "before": "2012-01-01/2012-12-31", "after": "2020/.."}
    )
    assert response.status_code == 400  # "2020" is not a date
    assert response.json()["description"].startswith("after:")
    response = client.get(
        "/changes",
        params={"bbox": BBOX, "before": "2012-01-01/2012-12-31", "after": "2020-01-01/.."},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["numberMatched"] == len(place.cells)
    features = body["features"]
    assert [f["id"] for f in features[:2]] == place.changed
    scores = [f["properties"]["change:score"] for f in features]
    assert scores == sorted(scores, reverse=True)
    # Unchanged cells score far below the changed ones.
    assert max(scores[2:]) < 0.5 * scores[1]
    top = features[0]["properties"]
    assert top["change:rank"] == 1
    assert top["before"]["datetime"] == "2012-07-31T00:00:00Z"
    assert top["after"]["datetime"] == "2020-08-31T00:00:00Z"
    assert top["before"]["caption"] == "naip_2012 cell 0"
    assert top["after"]["id"] == "naip_2020_4283_446"
    assert top["after"]["thumbnail"].endswith(
        "/collections/naip/items/naip_2020_4283_446/thumbnail"
    )
    # The overlapping sliver of the same date is the same cell; the fuller chip represents it.
    sliver_cell = next(f for f in features if f["id"] == place.cells[2])
    assert sliver_cell["properties"]["before"]["id"] == "naip_2012_4283_448"
    assert client.get(top["after"]["thumbnail"]).status_code == 200


def test_change_search_with_q_ranks_by_gain_and_pages(
    place_client: tuple[TestClient[Any], Place],
) -> None:
    client, place = place_client
    body = {
        "bbox": [float(v) for v in BBOX.split(",")],
        "before": "2012-01-01/2012-12-31",
        "after": "2020-01-01T00:00:00Z/2020-12-31T23:59:59Z",
        "q": NEW_BUILDINGS,
        "limit": 2,
    }
    first = client.post("/changes", json=body)
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["change:info"]["score"] == "gain"
    assert page["features"][0]["id"] == place.built
    assert page["features"][0]["properties"]["change:score"] > 0.3
    seen = [f["id"] for f in page["features"]]
    while True:
        link = next((link for link in page["links"] if link["rel"] == "next"), None)
        if link is None:
            break
        assert link["method"] == "POST"
        page = client.post("/changes", json=link["body"]).json()
        seen += [f["id"] for f in page["features"]]
    assert sorted(seen) == sorted(place.cells)
    assert len(seen) == len(set(seen))


def test_a_cell_timeline_lists_every_acquisition_in_date_order(
    place_client: tuple[TestClient[Any], Place],
) -> None:
    client, place = place_client
    response = client.get(f"/cells/{place.cells[2]}")
    assert response.status_code == 200
    timeline = response.json()["timeline"]
    assert [c["datetime"][:10] for c in timeline] == [
        "2012-07-31",
        "2012-07-31",
        "2016-08-16",
        "2020-08-31",
    ]
    assert {c["caption"] for c in timeline[:2]} == {"naip_2012 cell 2", "naip_2012_sliver cell 2"}
    missing = client.get("/cells/utm14n_5m_224px_1_1")
    assert missing.status_code == 404
    assert "utm14n_5m_224px_1_1" in missing.json()["description"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"before": "2012-01-01/2016-12-31", "after": "2016-01-01/2020-12-31"},
            "after: 2016-01-01/2020-12-31 overlaps before (2012-01-01/2016-12-31)",
        ),
        (
            {"before": "2012-01-01/2012-12-31", "after": "2014-01-01/2015-12-31"},
            "after: no acquisitions between 2014-01-01 and 2015-12-31 in this region; "
            "nearest 2016-08-16",
        ),
        (
            {"before": "..,2011-12-31", "after": "2020-01-01/.."},
            "before: '..,2011-12-31' is a single date",
        ),
        (
            {"before": "1990-01-01/2011-12-31", "after": "2020-01-01/.."},
            "before: no acquisitions between 1990-01-01 and 2011-12-31 in this region; "
            "nearest 2012-07-31",
        ),
        (
            {"before": "../1984-12-31", "after": "2020-01-01/.."},
            "before: no acquisitions before 1984-12-31 in this region; nearest 1985-01-01",
        ),
        (
            {"before": "2012-07-31", "after": "2020-01-01/.."},
            "before: '2012-07-31' is a single date",
        ),
        (
            {"before": "2012-07-31T00:00:00Z/2012-07-31T00:00:00Z", "after": "2020-01-01/.."},
            "before: '2012-07-31T00:00:00Z/2012-07-31T00:00:00Z' is a single date",
        ),
        ({"after": "2020-01-01/.."}, "before: required"),
        ({"before": "2012-01-01/2012-12-31", "after": "2020-12-31/2020-01-01"}, "after:"),
    ],
)
def test_bad_change_input_is_a_400_naming_the_parameter(
    place_client: tuple[TestClient[Any], Place], params: dict[str, str], message: str
) -> None:
    client, _ = place_client
    response = client.get("/changes", params={"bbox": BBOX, **params})
    assert response.status_code == 400, response.text
    assert message in response.json()["description"]


def test_change_search_needs_a_region_and_is_documented(
    place_client: tuple[TestClient[Any], Place],
) -> None:
    client, _ = place_client
    response = client.get(
        "/changes", params={"before": "2012-01-01/2012-12-31", "after": "2020-01-01/.."}
    )
    assert response.status_code == 400
    assert response.json()["description"].startswith("bbox: change search needs a region")
    elsewhere = client.get(
        "/changes",
        params={"bbox": "10,10,11,11", "before": "2012-01-01/2012-12-31", "after": "2020-01-01/.."},
    )
    assert elsewhere.status_code == 400
    assert "the region has no acquisitions at all" in elsewhere.json()["description"]
    paths = client.get("/api").json()["paths"]
    assert {"get", "post"} <= set(paths["/changes"])
    assert "/cells/{cell_id}" in paths
    conformance = client.get("/conformance").json()["conformsTo"]
    assert "https://geomelt.dev/stac-api/semantic-search/v1.0.0#change-search" in conformance


def test_an_item_dated_by_its_year_takes_part_in_change_search(
    place_client: tuple[TestClient[Any], Place],
) -> None:
    client, place = place_client
    response = client.get(
        "/changes",
        params={"bbox": BBOX, "before": "1985-01-01/1985-12-31", "after": "2020-01-01/.."},
    )
    assert response.status_code == 200, response.text
    [feature] = response.json()["features"]
    assert feature["id"] == place.cells[0]
    before = feature["properties"]["before"]
    assert before["caption"] == "landsat_1985 cell 0"
    assert (before["start_datetime"], before["end_datetime"]) == (
        "1985-01-01T00:00:00Z",
        "1985-12-31T23:59:59Z",
    )
    # A range that only overlaps the year does not hold it.
    partial = client.get(
        "/changes",
        params={"bbox": BBOX, "before": "1985-06-01/1986-06-01", "after": "2020-01-01/.."},
    )
    assert partial.status_code == 400
    timeline = client.get(f"/cells/{place.cells[0]}").json()["timeline"]
    assert timeline[0]["start_datetime"] == "1985-01-01T00:00:00Z"
    # An item dated 1990-2025 (unknown) is in the timeline but in no ordinary range.
    assert [c["caption"] for c in timeline[:2]] == ["landsat_1985 cell 0", "undated cell 0"]
    wide = client.get(
        "/changes",
        params={"bbox": BBOX, "before": "1990-01-01/2011-12-31", "after": "2020-01-01/.."},
    )
    assert wide.status_code == 400
