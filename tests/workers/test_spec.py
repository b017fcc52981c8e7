from __future__ import annotations

import pytest

from geomelt.db import InvalidSource
from geomelt.workers import SourceSpec, parse_duration
from geomelt.workers.spec import parse_assets, parse_bbox, parse_filter


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10", "5x", "0s"])
def test_bad_durations_name_the_input(text: str) -> None:
    with pytest.raises(InvalidSource, match="duration"):
        parse_duration(text)


def test_bbox_filter_and_assets() -> None:
    assert parse_bbox("16.3,48.1,16.4,48.2") == (16.3, 48.1, 16.4, 48.2)
    with pytest.raises(InvalidSource, match=r"bbox .*south > north"):
        parse_bbox("0,10,1,5")
    with pytest.raises(InvalidSource, match="bbox: expected 4 numbers"):
        parse_bbox("1,2,3")
    with pytest.raises(InvalidSource, match="bbox: 'a,b,c,d' is not a comma-separated list"):
        parse_bbox("a,b,c,d")
    assert parse_filter("eo:cloud_cover < 20")["op"] == "<"
    with pytest.raises(InvalidSource, match="not valid CQL2"):
        parse_filter("cloud <<< 3")
    assert parse_assets("red,green,blue") == ("red", "green", "blue")
    assert parse_assets(None) == ()
    with pytest.raises(InvalidSource, match="three band assets"):
        parse_assets("red,green")


def test_spec_from_options_checks_everything() -> None:
    spec = SourceSpec.from_options(
        name="vienna",
        stac_api_url="http://127.0.0.1:1/",
        collection="c",
        bbox="16,48,17,49",
        datetime="2023-01-01/..",
        filter_text="gsd < 1",
        assets="visual",
        every="1h",
    )
    assert spec.stac_api_url == "http://127.0.0.1:1"
    assert spec.search["bbox"] == [16, 48, 17, 49]
    assert spec.poll_every_s == 3600
    with pytest.raises(InvalidSource, match="either --bbox or --intersects"):
        SourceSpec.from_options(
            name="x",
            stac_api_url="http://h",
            collection="c",
            bbox="0,0,1,1",
            intersects='{"type":"Point","coordinates":[0,0]}',
        )
    # Checked by geomelt.db.sources, as every source is; its one error type.
    with pytest.raises(InvalidSource, match="overlap"):
        SourceSpec(name="x", stac_api_url="http://h", collection="c", overlap_px=224)
    with pytest.raises(InvalidSource, match="http"):
        SourceSpec(name="x", stac_api_url="ftp://h", collection="c")
