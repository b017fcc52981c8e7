"""pystac-client 0.9.1 against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

from pystac_client import Client

from geomelt.engine import semantic_search

from .seeding import Seeded


def test_pystac_client_browses_searches_and_pages(live_server: str, seeded: Seeded) -> None:
    client = Client.open(live_server)
    assert {c.id for c in client.get_collections()} == set(seeded.collections)
    everything = client.search(limit=7, max_items=None)
    ids = [item.id for item in everything.items()]
    assert sorted(ids) == sorted(seeded.chips)
    filtered = client.search(
        collections=["sentinel-2-l2a"],
        bbox=[2.0, 48.5, 2.45, 48.95],
        datetime="2024-05-01T00:00:00Z/2024-05-31T23:59:59Z",
        filter={"op": ">=", "args": [{"property": "valid_fraction"}, 0.6]},
        limit=2,
    )
    found = list(filtered.items())
    assert found
    assert all(i.properties["valid_fraction"] >= 0.6 for i in found)
    assert {i.properties["geomelt:source_item"] for i in found} == {"S2A_T31UDQ_20240501"}
    text_filtered = client.search(filter="caption LIKE '%river%'", filter_lang="cql2-text")
    assert all("river" in i.properties["caption"] for i in text_filtered.items())


def test_semantic_search_helper_runs_q_and_similar_to(live_server: str, seeded: Seeded) -> None:
    ranked = list(
        semantic_search(live_server, q="a bridge over a river", limit=4, max_items=12).items()
    )
    assert len(ranked) == 12
    assert [i.properties["search:rank"] for i in ranked] == list(range(1, 13))
    by_example = list(
        semantic_search(
            live_server, similar_to=["S2A_T31UDQ_20240501_1_1"], method="GET", limit=3, max_items=6
        ).items()
    )
    assert len(by_example) == 6
    assert all("search:score" in i.properties for i in by_example)
