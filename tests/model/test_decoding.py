"""T6 cached = uncached decoding, T7 greedy and beam search (spec §4.3-4.4)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from geomelt.model import ConfigError, GeoMeltModel
from geomelt.model.decoding import ModelStepper, RepetitionGuard, beam_search, greedy_search

BOS, MASK = 101, 103


def full_log_probs(model: GeoMeltModel, pixels: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
    """Uncached reference: image + [BOS, y…, MASK] with the §4.2 mask, prediction at MASK."""
    text = torch.cat([seqs, torch.full((seqs.size(0), 1), MASK)], dim=1)
    logits = model.caption_logits(pixels, text)[:, -1]
    return torch.log_softmax(logits.float(), dim=-1)


def test_cached_equals_uncached(tiny224: GeoMeltModel) -> None:
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    stepper = ModelStepper(tiny224, pixels, bos_id=BOS, mask_id=MASK)
    seqs = torch.full((2, 1), BOS)
    tokens_gen = torch.Generator().manual_seed(4)
    n1 = tiny224.num_image_tokens
    with torch.no_grad():
        cached = stepper.start(1)
        for text_len in range(2, 7):  # 5 steps
            torch.testing.assert_close(
                cached, full_log_probs(tiny224, pixels, seqs), rtol=0, atol=1e-5
            )
            assert stepper.cache.length == n1 + text_len - 1
            nxt = torch.randint(999, 30522, (2,), generator=tokens_gen)
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
            cached = stepper.step(nxt, text_len + 1)


def test_cached_equals_uncached_with_beam_reorder(tiny224: GeoMeltModel) -> None:
    beams = 3
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    expanded = pixels.repeat_interleave(beams, dim=0)
    stepper = ModelStepper(tiny224, pixels, bos_id=BOS, mask_id=MASK)
    seqs = torch.full((2 * beams, 1), BOS)
    gen = torch.Generator().manual_seed(6)
    with torch.no_grad():
        cached = stepper.start(beams)
        for text_len in range(2, 6):
            torch.testing.assert_close(
                cached, full_log_probs(tiny224, expanded, seqs), rtol=0, atol=1e-5
            )
            # An arbitrary reorder within each sentence's beams.
            beam_idx = torch.cat(
                [b * beams + torch.randperm(beams, generator=gen) for b in range(2)]
            )
            beam_idx[1] = beam_idx[0]
            stepper.reorder(beam_idx)
            seqs = seqs.index_select(0, beam_idx)
            nxt = torch.randint(999, 30522, (2 * beams,), generator=gen)
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
            cached = stepper.step(nxt, text_len + 1)


class MarkovStub:
    """Log-probs depend only on the last token: table[last] (start uses row `start_row`)."""

    def __init__(self, table: torch.Tensor, start_row: int = 0) -> None:
        self.table = table.log_softmax(dim=-1)
        self.start_row = start_row
        self.calls = 0
        self.batch = 1

    def start(self, beams: int) -> torch.Tensor:
        self.calls += 1
        return self.table[self.start_row].expand(self.batch * beams, -1).clone()

    def step(self, last_tokens: torch.Tensor, text_len: int) -> torch.Tensor:
        self.calls += 1
        return self.table[last_tokens]

    def reorder(self, beam_idx: torch.Tensor) -> None:
        return None


EOS = 4


def greedy_reference(stub: MarkovStub, max_len: int) -> tuple[list[int], float, int]:
    tokens: list[int] = []
    row, total, text_len = stub.start_row, 0.0, 2
    while True:
        token = int(stub.table[row].argmax())
        total += float(stub.table[row, token])
        if token == EOS:
            return tokens, total, text_len
        tokens.append(token)
        if text_len + 1 == max_len:
            return tokens, total, text_len
        row, text_len = token, text_len + 1


@pytest.mark.parametrize("seed", range(8))
def test_greedy_is_argmax_and_beam1_scores_at_least_greedy(seed: int) -> None:
    table = torch.randn(5, 5, generator=torch.Generator().manual_seed(seed)) * 2
    table[:, EOS] += 1.0
    stub = MarkovStub(table)
    tokens = greedy_search(stub, 1, eos_id=EOS, max_len=12)[0]
    ref_tokens, ref_sum, ref_len = greedy_reference(MarkovStub(table), 12)
    assert tokens == ref_tokens
    hyp = beam_search(MarkovStub(table), 1, beams=1, eos_id=EOS, max_len=12)[0]
    if len(ref_tokens) < 10:  # greedy ended with EOS: its §4.4 score is defined
        assert hyp.score >= ref_sum / ref_len**0.6 - 1e-6


def test_beam1_equals_greedy_when_eos_comes_first_at_finish() -> None:
    # Path BOS -> 1 -> 2 -> EOS; EOS is the argmax exactly when greedy finishes.
    table = torch.full((5, 5), -5.0)
    table[0, 1] = 3.0
    table[1, 2] = 3.0
    table[2, EOS] = 3.0
    table[2, 3] = 2.0
    table[3, EOS] = 0.0
    greedy = greedy_search(MarkovStub(table), 1, eos_id=EOS, max_len=10)[0]
    hyp = beam_search(MarkovStub(table), 1, beams=1, eos_id=EOS, max_len=10)[0]
    assert greedy == [1, 2]
    assert hyp.tokens == greedy


def test_finished_score_is_sum_over_length_penalty() -> None:
    probs = torch.full((5, 5), 1e-6)
    probs[0, 1], probs[0, 2] = 0.7, 0.3
    probs[1, 3], probs[1, 2] = 0.6, 0.4
    probs[3, EOS], probs[3, 1] = 0.9, 0.1
    probs[2, EOS] = 0.5
    probs = probs / probs.sum(dim=-1, keepdim=True)
    stub = MarkovStub(probs.log())
    hyp = beam_search(stub, 1, beams=2, eos_id=EOS, max_len=10)[0]
    lp = stub.table
    expected = float(lp[0, 1] + lp[1, 3] + lp[3, EOS]) / 4**0.6  # 3 steps: c = 4 at EOS
    assert hyp.tokens == [1, 3]
    assert hyp.score == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(math.log(0.7 * 0.6 * 0.9) / 4**0.6, abs=1e-4)


@pytest.mark.parametrize("quirk", [True, False])
def test_generation_never_exceeds_max_len(quirk: bool) -> None:
    table = torch.zeros(5, 5)
    table[:, EOS] = -20.0
    table[:, 1] = 5.0
    for max_len in (3, 5, 9):
        stub = MarkovStub(table)
        greedy = greedy_search(stub, 1, eos_id=EOS, max_len=max_len)[0]
        assert len(greedy) == max_len - 2
        assert stub.calls == max_len - 2
        hyp = beam_search(
            MarkovStub(table), 1, beams=3, eos_id=EOS, max_len=max_len, official_maxlen_quirk=quirk
        )[0]
        assert len(hyp.tokens) == (max_len - 3 if quirk else max_len - 2)


def test_batched_beam_search_matches_single(tiny224: GeoMeltModel) -> None:
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(8))
    kwargs = {"beams": 3, "eos_id": 102, "max_len": 7}
    both = beam_search(ModelStepper(tiny224, pixels, bos_id=BOS, mask_id=MASK), 2, **kwargs)
    one = beam_search(ModelStepper(tiny224, pixels[1:], bos_id=BOS, mask_id=MASK), 1, **kwargs)
    assert both[1].tokens == one[0].tokens
    assert both[1].score == pytest.approx(one[0].score, abs=1e-4)
    assert all(len(h.tokens) <= 5 for h in both)


def test_search_rejects_bad_arguments() -> None:
    stub = MarkovStub(torch.zeros(5, 5))
    with pytest.raises(ConfigError, match="max_len"):
        greedy_search(stub, 1, eos_id=EOS, max_len=2)
    with pytest.raises(ConfigError, match="beams"):
        beam_search(stub, 1, beams=0, eos_id=EOS, max_len=5)


def _repeats(tokens: list[int]) -> tuple[int, int]:
    """(tokens equal to their predecessor, bigrams seen before)."""
    pairs = list(itertools.pairwise(tokens))
    return sum(a == b for a, b in pairs), len(pairs) - len(set(pairs))


def test_repetition_guard_breaks_loops_in_greedy_and_beam_search() -> None:
    # A loop-prone model: after 1 the best next token is 1 again, after 2 it is 1, EOS is weak.
    table = torch.full((6, 6), -4.0)
    table[0, 1] = table[1, 1] = table[2, 1] = table[3, 2] = table[5, 3] = 3.0
    table[1, 2] = table[2, 3] = table[3, 1] = 2.0
    table[:, 5] = 1.0
    plain = greedy_search(MarkovStub(table), 1, eos_id=EOS, max_len=12)[0]
    assert plain == [1] * 10
    guarded = greedy_search(RepetitionGuard(MarkovStub(table)), 1, eos_id=EOS, max_len=12)[0]
    assert guarded[0] == 1
    assert _repeats(guarded) == (0, 0)
    stub = MarkovStub(table)
    stub.batch = 2
    for hypothesis in beam_search(RepetitionGuard(stub), 2, beams=3, eos_id=EOS, max_len=12):
        assert len(hypothesis.tokens) >= 3
        assert _repeats(hypothesis.tokens) == (0, 0)


def test_repetition_guard_forbids_a_word_repeated_across_a_joiner() -> None:
    # Token 3 is the joiner: after 1 comes 3, after 3 the best token is 1 again ("blue - blue"),
    # the second best 2, after which EOS.
    table = torch.full((6, 6), -4.0)
    table[0, 1] = table[1, 3] = table[3, 1] = table[2, EOS] = 3.0
    table[3, 2] = 2.0
    unaware = greedy_search(RepetitionGuard(MarkovStub(table)), 1, eos_id=EOS, max_len=12)[0]
    assert unaware[:3] == [1, 3, 1]
    guard = RepetitionGuard(MarkovStub(table), joiners=frozenset({3}))
    assert greedy_search(guard, 1, eos_id=EOS, max_len=12)[0] == [1, 3, 2]
