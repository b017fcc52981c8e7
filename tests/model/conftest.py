"""Fixtures for model tests: small seeded models on CPU in fp32 eval mode."""

from __future__ import annotations

import pytest
import torch

from geomelt.model import GeoMeltModel, create_model, get_config
from geomelt.model.tokenizer import WordPieceTokenizer


def build(preset: str = "tiny", img_size: int = 224, seed: int = 0) -> GeoMeltModel:
    return create_model(get_config(preset, img_size=img_size), seed=seed)


@pytest.fixture(scope="session")
def tiny224() -> GeoMeltModel:
    return build("tiny", 224)


@pytest.fixture
def tiny64() -> GeoMeltModel:
    """tiny at 64 px (N = 16 patches): fast enough to rebuild for tests that mutate it."""
    return build("tiny", 64)


@pytest.fixture(scope="session")
def wordpiece() -> WordPieceTokenizer:
    return WordPieceTokenizer()


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)
