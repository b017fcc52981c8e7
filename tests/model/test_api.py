"""The public API used by workers and engine: load(), encode_*, caption, zero_shot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import geomelt.model as gm


@pytest.fixture(scope="module")
def tiny() -> gm.GeoMelt:
    return gm.load("tiny-random")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)


def test_public_names() -> None:
    for name in ("load", "GeoMelt", "create_model", "list_presets", "ModelError", "ConfigError"):
        assert name in gm.__all__
    assert issubclass(gm.CheckpointError, gm.ModelError)


def test_load_is_seeded_and_versioned(tiny: gm.GeoMelt) -> None:
    again = gm.load("tiny-random")
    assert tiny.version == again.version
    assert tiny.version.startswith("tiny-random@")
    assert len(tiny.version.split("@")[1]) == 12
    assert tiny.embedding_dim == 192
    assert tiny.config.name == "tiny"


def test_unknown_name_lists_available() -> None:
    with pytest.raises(
        gm.ConfigError, match="available names: geomelt-small, small-random, tiny-random"
    ):
        gm.load("geomelt-large")


def test_encode_images_unit_float32(tiny: gm.GeoMelt, images: np.ndarray) -> None:
    emb = tiny.encode_images(images)
    assert emb.shape == (3, 192)
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2)
    torch.testing.assert_close(tiny.encode_images(nchw), emb)
    # batch independence: one image alone gives the same vector
    torch.testing.assert_close(tiny.encode_images(images[1:2]), emb[1:2], atol=1e-5, rtol=0)


def test_encode_texts(tiny: gm.GeoMelt) -> None:
    texts = ["a plane is parked at the airport", "many green trees", "a"]
    emb = tiny.encode_texts(texts)
    assert emb.shape == (3, 192)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    # padding does not change a text's embedding
    torch.testing.assert_close(tiny.encode_texts(texts[2:]), emb[2:], atol=1e-5, rtol=0)
    assert tiny.encode_texts([]).shape == (0, 192)


def test_caption_returns_strings_within_length(tiny: gm.GeoMelt, images: np.ndarray) -> None:
    beam = tiny.caption(images[:2], beams=3, max_len=6)
    greedy = tiny.caption(images[:2], beams=1, max_len=6)
    for captions in (beam, greedy):
        assert len(captions) == 2
        assert all(isinstance(c, str) for c in captions)
        assert all(len(c.split()) <= 4 for c in captions)  # max_len 6 = BOS + 4 + EOS
    assert all(c == c.lower() for c in beam)


def test_zero_shot(tiny: gm.GeoMelt, images: np.ndarray) -> None:
    labels = ["forest", "airport", "river"]
    result = tiny.zero_shot(images, labels)
    assert result.probabilities.shape == (3, 3)
    torch.testing.assert_close(result.probabilities.sum(dim=-1), torch.ones(3))
    assert torch.equal(result.indices, result.probabilities.argmax(dim=-1))
    assert result.labels == [labels[i] for i in result.indices.tolist()]
    with pytest.raises(gm.ConfigError, match="no labels"):
        tiny.zero_shot(images, [])


def test_saved_model_loads_with_identical_outputs(
    tiny: gm.GeoMelt, images: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "tiny.safetensors"
    digest = gm.save_checkpoint(tiny.model, path, tokenizer=tiny.tokenizer.spec)
    loaded = gm.load(path)
    assert loaded.version == f"tiny@{digest[:12]}"
    assert torch.equal(loaded.encode_images(images), tiny.encode_images(images))
    assert torch.equal(loaded.encode_texts(["a river"]), tiny.encode_texts(["a river"]))


def test_device_and_dtype_follow_input(tiny: gm.GeoMelt) -> None:
    model = gm.create_model(gm.get_config("tiny", img_size=32), seed=0, dtype=torch.float64)
    pixels = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    out = model.encode_images(pixels)
    assert out.dtype == torch.float64
    assert out.device == pixels.device
    with pytest.raises(gm.ConfigError, match=r"expected \(B, 3, 32, 32\)"):
        model.encode_images(torch.randn(1, 3, 64, 64, dtype=torch.float64))


def test_bfloat16_load(images: np.ndarray) -> None:
    half = gm.load("tiny-random", dtype=torch.bfloat16)
    emb = half.encode_images(images[:1])
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(1), atol=1e-2, rtol=0)
