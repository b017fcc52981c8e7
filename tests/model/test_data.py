"""Data loading, weak captions, the unique-image sampler and the directional-word guard."""

from __future__ import annotations

from pathlib import Path

import pytest
from toy_data import karpathy_dataset, scene_dataset

from geomelt.model import ConfigError
from geomelt.model.data import (
    ImageRecord,
    UniqueImageBatchSampler,
    has_directional_word,
    images_root_for,
    load_karpathy,
    load_scenes,
    matching_pairs,
    parse_data_spec,
)


def test_karpathy_splits_and_default_images_root(tmp_path: Path) -> None:
    path = karpathy_dataset(tmp_path)
    assert images_root_for(path) == tmp_path / "images"
    train, val = load_karpathy(path, ["train"]), load_karpathy(path, ["val"])
    assert (len(train), len(val)) == (9, 3)
    assert all(len(r.captions) == 5 and r.path.is_file() for r in train + val)
    assert not {r.path for r in train} & {r.path for r in val}


def test_karpathy_errors_name_the_input(tmp_path: Path) -> None:
    path = karpathy_dataset(tmp_path)
    with pytest.raises(ConfigError, match="splits present: train, val"):
        load_karpathy(path, ["test"])
    with pytest.raises(ConfigError, match="--images-root"):
        load_karpathy(path, ["train"], images_root=tmp_path / "nowhere")


def test_scene_split_is_disjoint_seeded_and_weakly_captioned(tmp_path: Path) -> None:
    root = scene_dataset(tmp_path / "scenes", per_class=5)
    train, val = load_scenes(root, "train"), load_scenes(root, "val")
    assert (len(train), len(val)) == (12, 3)  # 20 % of 5 per class
    assert not {r.path for r in train} & {r.path for r in val}
    assert [r.path for r in load_scenes(root, "val")] == [r.path for r in val]
    assert [r.path for r in load_scenes(root, "val", seed=1)] != [r.path for r in val]
    assert val[0].label == "blue"
    assert "an aerial image of blue." in val[0].captions


def test_matching_pairs_by_scene_class_and_by_caption_text(tmp_path: Path) -> None:
    scenes = load_scenes(scene_dataset(tmp_path / "scenes", per_class=5), "train")
    captioned = [
        ImageRecord(Path("a.jpg"), ("Many cars are parked.", "A lot."), "ucm", "parking"),
        ImageRecord(Path("b.jpg"), ("many  cars are parked", "Some trees."), "ucm", "parking"),
    ]
    records = [*scenes, *captioned]
    blue = [i for i, r in enumerate(scenes) if r.label == "blue"]
    other = next(i for i, r in enumerate(scenes) if r.label != "blue")
    a, b = len(scenes), len(scenes) + 1
    # Two blue scenes under different templates match; a blue and another class do not.
    pairs = matching_pairs(records, [(blue[0], 0), (blue[1], 3), (other, 0), (a, 0), (b, 0)])
    assert pairs.diagonal().all()
    assert pairs[0, 1]
    assert pairs[1, 0]
    assert not pairs[0, 2]
    # Same caption text (case, spacing, final full stop aside) matches; same class does not.
    assert pairs[3, 4]
    assert pairs[4, 3]
    assert not matching_pairs(records, [(a, 1), (b, 1)])[0, 1]


def test_parse_data_spec(tmp_path: Path) -> None:
    path = karpathy_dataset(tmp_path)
    assert parse_data_spec(f"{path}@2.5") == ("karpathy", path, 2.5)
    assert parse_data_spec(f"scenes:{tmp_path}") == ("scenes", tmp_path, 1.0)
    with pytest.raises(ConfigError, match="does not exist"):
        parse_data_spec("scenes:/no/such/dir")


@pytest.mark.parametrize("batch_size", [2, 3, 4])
def test_sampler_never_repeats_an_image_within_a_batch(batch_size: int) -> None:
    records = [
        ImageRecord(Path(f"{i}.jpg"), ("a", "b", "c"), "toy", weight=3.0 if i < 3 else 1.0)
        for i in range(10)
    ]
    sampler = UniqueImageBatchSampler(records, batch_size, seed=3)
    repeats = 0
    for epoch in range(3):
        batches = sampler.epoch(epoch)
        assert batches
        assert all(len(b) == batch_size for b in batches)
        for batch in batches:
            images = [i for i, _ in batch]
            assert len(set(images)) == len(images)
            assert all(0 <= c < 3 for _, c in batch)
        repeats += [i for b in batches for i, _ in b].count(0)
    assert repeats > 3  # weight 3 repeats the image across batches (a few fall off the end)
    assert sampler.epoch(1) == UniqueImageBatchSampler(records, batch_size, seed=3).epoch(1)


def test_directional_guard() -> None:
    assert has_directional_word("a road on the Left of the river")
    assert has_directional_word("trees in the upper part")
    assert not has_directional_word("a bright residential area")
    assert not has_directional_word("leftover sand")
