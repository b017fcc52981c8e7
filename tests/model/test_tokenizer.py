"""T13 tokenizers: WordPiece golden ids, special ids, truncation, tokenizer checks (§5)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from geomelt.model import CheckpointError, ConfigError, create_model, load, save_checkpoint
from geomelt.model.tokenizer import WordPieceTokenizer, XlmrTokenizer, encode_batch, load_tokenizer

GOLDEN = {
    "Many green trees are around a baseball field.": [101, 2116, 2665, 3628, 2024, 2105, 1037, 3598, 2492, 1012, 102],  # noqa: E501
    "a plane is parked at the airport": [101, 1037, 4946, 2003, 9083, 2012, 1996, 3199, 102],
    "An overpass crosses the highway near 2 storage-tanks": [
        101, 2019, 2058, 15194, 7821, 1996, 3307, 2379, 1016, 5527, 1011, 7286, 102,
    ],
}  # fmt: skip


def test_golden_ids(wordpiece: WordPieceTokenizer) -> None:
    ids, padding = encode_batch(wordpiece, list(GOLDEN), max_len=64)
    for row, expected in enumerate(GOLDEN.values()):
        assert ids[row, : len(expected)].tolist() == expected
        assert ids[row, len(expected) :].eq(0).all()
        assert padding[row].sum() == ids.size(1) - len(expected)


def test_special_ids_and_vocab_hash(wordpiece: WordPieceTokenizer) -> None:
    spec = wordpiece.spec
    assert (spec.bos_id, spec.eos_id, spec.pad_id, spec.mask_id, spec.unk_id) == (
        101,
        102,
        0,
        103,
        100,
    )
    assert (spec.rand_low, spec.rand_high, spec.vocab_size_tok, spec.model_vocab) == (
        999,
        30521,
        30522,
        30522,
    )
    assert spec.sha256 == "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"


def test_long_text_is_not_truncated_by_tokenizer_json(wordpiece: WordPieceTokenizer) -> None:
    text = " ".join(["field"] * 300)
    assert len(wordpiece.pieces([text])[0]) == 300
    ids, padding = encode_batch(wordpiece, [text, "a"], max_len=10)
    assert ids.shape == (2, 10)
    assert ids[0, 0] == 101
    assert ids[0, -1] == 102
    assert ids[1].tolist()[:3] == [101, 1037, 102]
    assert padding[1].sum() == 7
    ids, _ = encode_batch(wordpiece, ["a"], max_len=10, pad_to_max=True)
    assert ids.shape == (1, 10)


def test_decode_round_trip(wordpiece: WordPieceTokenizer) -> None:
    ids = wordpiece.pieces(["a plane is parked at the airport"])[0]
    assert wordpiece.decode([101, *ids, 102, 0]) == "a plane is parked at the airport"


def test_xlmr_needs_sentencepiece_or_file(tmp_path: Path) -> None:
    missing = tmp_path / "beit3.spm"
    if importlib.util.find_spec("sentencepiece") is None:
        with pytest.raises(ConfigError, match="pip install sentencepiece"):
            XlmrTokenizer(missing)
    else:
        with pytest.raises(ConfigError, match="no such file"):
            XlmrTokenizer(missing)
    with pytest.raises(ConfigError, match=r"beit3\.spm"):
        load_tokenizer("xlmr")
    with pytest.raises(ConfigError, match="unknown"):
        load_tokenizer("bpe")


def test_checkpoint_refuses_other_tokenizer(tmp_path: Path, wordpiece: WordPieceTokenizer) -> None:
    path = tmp_path / "m.safetensors"
    other = dataclasses.replace(wordpiece.spec, sha256="0" * 64)
    save_checkpoint(create_model("tiny", seed=0), path, tokenizer=other)
    with pytest.raises(CheckpointError, match="supply the tokenizer it was trained with"):
        load(path)
    xlmr_spec = dataclasses.replace(wordpiece.spec, kind="xlmr", model_vocab=64010)
    with pytest.raises(CheckpointError, match="64010 vocabulary rows"):
        save_checkpoint(create_model("tiny", device="meta"), path, tokenizer=xlmr_spec)
