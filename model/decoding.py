"""Caption decoding: greedy and BEiT-3 beam search over a cached step model (spec §4.3-4.4)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Protocol

import torch

from .attention import KVCache
from .errors import ConfigError
from .network import GeoMeltModel
from .tokenizer import TextTokenizer

__all__ = [
    "Hypothesis",
    "ModelStepper",
    "RepetitionGuard",
    "StepModel",
    "beam_search",
    "caption_texts",
    "greedy_search",
]

# Initial score of beams 1.. so that only beam 0 expands at the first step.
DEAD_BEAM = -1e9


class StepModel(Protocol):
    """What the search loops need: next-token log-probs and cache reordering."""

    def start(self, beams: int) -> torch.Tensor:
        """Log-probs (B·beams, V) for text length 2 ([BOS, MASK])."""
        ...

    def step(self, last_tokens: torch.Tensor, text_len: int) -> torch.Tensor:
        """Log-probs (B·beams, V) after appending last_tokens at text length `text_len`."""
        ...

    def reorder(self, beam_idx: torch.Tensor) -> None: ...


class ModelStepper:
    """StepModel over a GeoMeltModel and one image batch, with a key/value cache."""

    def __init__(self, model: GeoMeltModel, pixels: torch.Tensor, *, bos_id: int, mask_id: int):
        self.model = model
        self.pixels = pixels
        self.bos_id = bos_id
        self.mask_id = mask_id
        self.cache: KVCache = model.new_cache()

    def start(self, beams: int) -> torch.Tensor:
        log_probs = self.model.decode_first(self.pixels, self.bos_id, self.mask_id, self.cache)
        if beams > 1:
            # Beams share the image; expand after the fused pass instead of recomputing it.
            self.cache.repeat_interleave(beams)
            log_probs = log_probs.repeat_interleave(beams, dim=0)
        return log_probs

    def step(self, last_tokens: torch.Tensor, text_len: int) -> torch.Tensor:
        return self.model.decode_next(last_tokens, text_len, self.mask_id, self.cache)

    def reorder(self, beam_idx: torch.Tensor) -> None:
        self.cache.reorder(beam_idx)


@dataclass(frozen=True)
class Hypothesis:
    """Generated tokens (BOS and EOS excluded) and the length-normalised score."""

    tokens: list[int]
    score: float


class RepetitionGuard:
    """A StepModel wrapper that forbids a token right after itself and any bigram twice.

    Under-trained captioners loop ("parking parking parking lot lot"); human captions almost
    never repeat a word back to back or a two-word phrase. A token is also forbidden right after
    one of `joiners` that follows it: a hyphen between two equal words ("blue - blue waters")
    is the same loop. Banned tokens get DEAD_BEAM as their log-prob, so every search still has
    candidates. It follows each row's tokens through `step` (appended) and `reorder` (beams
    swapped), the only ways a search changes them.
    """

    def __init__(self, inner: StepModel, joiners: frozenset[int] = frozenset()) -> None:
        self.inner = inner
        self.joiners = joiners
        self.history: list[list[int]] = []

    def _guard(self, log_probs: torch.Tensor) -> torch.Tensor:
        rows, cols = [], []
        for row, tokens in enumerate(self.history):
            if not tokens:
                continue
            last = tokens[-1]
            banned = {last} | {b for a, b in itertools.pairwise(tokens) if a == last}
            if last in self.joiners and len(tokens) >= 2:
                banned.add(tokens[-2])
            rows += [row] * len(banned)
            cols += sorted(banned)
        if rows:
            log_probs = log_probs.clone()
            log_probs[rows, cols] = DEAD_BEAM
        return log_probs

    def start(self, beams: int) -> torch.Tensor:
        log_probs = self.inner.start(beams)
        self.history = [[] for _ in range(log_probs.size(0))]
        return log_probs

    def step(self, last_tokens: torch.Tensor, text_len: int) -> torch.Tensor:
        for row, token in enumerate(last_tokens.tolist()):
            self.history[row].append(token)
        return self._guard(self.inner.step(last_tokens, text_len))

    def reorder(self, beam_idx: torch.Tensor) -> None:
        self.history = [list(self.history[i]) for i in beam_idx.tolist()]
        self.inner.reorder(beam_idx)


def _check_max_len(max_len: int) -> None:
    if max_len < 3:
        raise ConfigError(f"max_len {max_len}: must be >= 3 ([BOS], one token, [EOS])")


@torch.no_grad()
def greedy_search(stepper: StepModel, batch: int, *, eos_id: int, max_len: int) -> list[list[int]]:
    """Argmax each step; a row stops at its first EOS; text length never reaches max_len."""
    _check_max_len(max_len)
    log_probs = stepper.start(1)
    out: list[list[int]] = [[] for _ in range(batch)]
    done = [False] * batch
    text_len = 2
    while True:
        next_tokens = log_probs.argmax(dim=-1)
        for row, token in enumerate(next_tokens.tolist()):
            if done[row]:
                continue
            if token == eos_id:
                done[row] = True
            else:
                out[row].append(token)
        if all(done) or text_len + 1 == max_len:
            return out
        text_len += 1
        log_probs = stepper.step(next_tokens, text_len)


@dataclass
class _Best:
    tokens: list[int]
    score: float


def _expand_row(
    top_scores: list[float],
    top_ids: list[int],
    *,
    row: int,
    beams: int,
    vocab: int,
    seqs: list[list[int]],
    log_norm: float,
    last_step: bool,
    eos_id: int,
    quirk: bool,
) -> tuple[list[tuple[float, int, int]], _Best | None]:
    """Split one sentence's ranked candidates into finished hypotheses and live beams."""
    best: _Best | None = None
    live: list[tuple[float, int, int]] = []
    for score, flat in zip(top_scores, top_ids, strict=True):
        beam, token = divmod(flat, vocab)
        source = row * beams + beam
        if token == eos_id or last_step:
            tokens = list(seqs[source])
            if token != eos_id and not quirk:
                tokens.append(token)
            normalised = score / log_norm
            if best is None or normalised > best.score:
                best = _Best(tokens, normalised)
        else:
            live.append((score, token, source))
        if len(live) == beams:
            break
    return live, best


@torch.no_grad()
def beam_search(
    stepper: StepModel,
    batch: int,
    *,
    beams: int,
    eos_id: int,
    max_len: int,
    length_penalty: float = 0.6,
    official_maxlen_quirk: bool = True,
) -> list[Hypothesis]:
    """BEiT-3 beam search: finished score = Σ log p / c^α, one best hypothesis per sentence.

    c is the text length counting BOS, generated tokens and the slot being predicted. With
    `official_maxlen_quirk` the word predicted at the max_len cut-off is dropped, as upstream.
    """
    _check_max_len(max_len)
    if beams < 1:
        raise ConfigError(f"beams {beams}: must be >= 1")
    log_probs = stepper.start(beams)
    vocab = log_probs.size(-1)
    device = log_probs.device
    beam_scores = torch.zeros(batch, beams, device=device)
    beam_scores[:, 1:] = DEAD_BEAM
    beam_scores = beam_scores.view(-1)
    seqs: list[list[int]] = [[] for _ in range(batch * beams)]
    finished: list[_Best | None] = [None] * batch
    done = [False] * batch
    done_norm = float(max_len - 1) ** length_penalty
    text_len = 2
    while True:
        last_step = text_len + 1 == max_len
        scores = (log_probs + beam_scores[:, None]).view(batch, beams * vocab)
        top_scores, top_ids = scores.topk(min(3 * beams, beams * vocab), dim=1)
        next_beams: list[tuple[float, int, int]] = []
        for row in range(batch):
            if done[row]:
                next_beams.extend([(DEAD_BEAM, eos_id, row * beams)] * beams)
                continue
            live, best = _expand_row(
                top_scores[row].tolist(),
                top_ids[row].tolist(),
                row=row,
                beams=beams,
                vocab=vocab,
                seqs=seqs,
                log_norm=float(text_len) ** length_penalty,
                last_step=last_step,
                eos_id=eos_id,
                quirk=official_maxlen_quirk,
            )
            current = finished[row]
            if best is not None and (current is None or best.score > current.score):
                finished[row] = current = best
            best_live = float(top_scores[row].max())
            done[row] = current is not None and current.score >= best_live / done_norm
            live += [(DEAD_BEAM, eos_id, row * beams)] * (beams - len(live))
            next_beams.extend(live)
        if all(done) or last_step:
            break
        beam_idx = torch.tensor([source for _, _, source in next_beams], device=device)
        tokens = torch.tensor([token for _, token, _ in next_beams], device=device)
        beam_scores = torch.tensor([score for score, _, _ in next_beams], device=device)
        seqs = [seqs[source] + [token] for _, token, source in next_beams]
        stepper.reorder(beam_idx)
        text_len += 1
        log_probs = stepper.step(tokens, text_len)
    return [
        Hypothesis(b.tokens, b.score) if b is not None else Hypothesis([], float("-inf"))
        for b in finished
    ]


@torch.no_grad()
def caption_texts(
    model: GeoMeltModel,
    tokenizer: TextTokenizer,
    pixels: torch.Tensor,
    *,
    beams: int,
    max_len: int,
    length_penalty: float,
    no_repeats: bool = False,
) -> list[str]:
    """One lower-cased caption per image: greedy when beams == 1, else BEiT-3 beam search.

    `no_repeats` decodes under a RepetitionGuard; off, decoding is exactly BEiT-3's.
    """
    spec = tokenizer.spec
    stepper: StepModel = ModelStepper(model, pixels, bos_id=spec.bos_id, mask_id=spec.mask_id)
    if no_repeats:
        (hyphen,) = tokenizer.pieces(["-"])
        stepper = RepetitionGuard(stepper, joiners=frozenset(hyphen))
    if beams == 1:
        tokens = greedy_search(stepper, pixels.size(0), eos_id=spec.eos_id, max_len=max_len)
    else:
        hypotheses = beam_search(
            stepper,
            pixels.size(0),
            beams=beams,
            eos_id=spec.eos_id,
            max_len=max_len,
            length_penalty=length_penalty,
        )
        tokens = [h.tokens for h in hypotheses]
    return [tokenizer.decode(t).strip().lower() for t in tokens]
