"""T5 captioning attention mask and T10 masked-token corruption (spec §4.1-4.2)."""

from __future__ import annotations

import pytest
import torch

from geomelt.model import ConfigError, GeoMeltModel
from geomelt.model.masking import caption_blocked_mask, mask_caption_tokens, masked_count
from geomelt.model.tokenizer import WordPieceTokenizer


def test_blocked_mask_layout() -> None:
    blocked = caption_blocked_mask(3, 4)
    assert blocked.shape == (7, 7)
    assert blocked[:3, :3].sum() == 0  # image -> image
    assert blocked[:3, 3:].eq(1).all()  # image never sees text
    assert blocked[3:, :3].sum() == 0  # text -> all image
    assert torch.equal(blocked[3:, 3:], 1 - torch.tril(torch.ones(4, 4, dtype=torch.long)))


def test_fused_image_states_equal_image_only(tiny224: GeoMeltModel) -> None:
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(999, 30522, (2, 8))
    with torch.no_grad():
        fused = tiny224.fused_states(pixels, ids)
        image = tiny224.image_states(pixels)
    torch.testing.assert_close(fused[:, :197], image, rtol=0, atol=1e-5)


def test_text_is_causal(tiny64: GeoMeltModel) -> None:
    pixels = torch.randn(1, 3, 64, 64)
    ids = torch.randint(999, 30522, (1, 8))
    n1 = tiny64.num_image_tokens
    for j in (1, 4, 7):
        changed = ids.clone()
        changed[0, j] = 1000 if ids[0, j] != 1000 else 1001
        with torch.no_grad():
            a = tiny64.fused_states(pixels, ids)
            b = tiny64.fused_states(pixels, changed)
        torch.testing.assert_close(b[:, : n1 + j], a[:, : n1 + j], rtol=0, atol=1e-6)
        assert not torch.allclose(b[:, n1 + j], a[:, n1 + j], atol=1e-4)


def test_padding_leaves_real_tokens_unchanged(tiny64: GeoMeltModel) -> None:
    pixels = torch.randn(2, 3, 64, 64)
    ids = torch.randint(999, 30522, (2, 6))
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    pad_mask = torch.zeros(2, 9, dtype=torch.bool)
    pad_mask[:, 6:] = True
    with torch.no_grad():
        plain = tiny64.fused_states(pixels, ids)
        with_pad = tiny64.fused_states(pixels, padded, pad_mask)
        text_plain = tiny64.text_states(ids)
        text_pad = tiny64.text_states(padded, pad_mask)
    # 1e-5: a longer sequence changes the kernels' summation order (1.04e-6 apart on an AVX512
    # Xeon); padding that leaked into attention would move states by orders of magnitude more.
    torch.testing.assert_close(with_pad[:, : plain.size(1)], plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(text_pad[:, :6], text_plain, rtol=0, atol=1e-5)


def test_masked_logits_select_positions(tiny64: GeoMeltModel) -> None:
    pixels = torch.randn(2, 3, 64, 64)
    ids = torch.randint(999, 30522, (2, 6))
    chosen = torch.zeros(2, 6, dtype=torch.bool)
    chosen[0, 2] = chosen[1, 4] = True
    with torch.no_grad():
        full = tiny64.caption_logits(pixels, ids)
        sel = tiny64.caption_logits(pixels, ids, masked_positions=chosen)
    assert full.shape == (2, 6, 30522)
    torch.testing.assert_close(sel, torch.stack([full[0, 2], full[1, 4]]))


@pytest.mark.parametrize("n", [3, 10, 32])
@pytest.mark.parametrize("p", [0.6, 0.7])
def test_mask_count_and_positions(n: int, p: float, wordpiece: WordPieceTokenizer) -> None:
    spec = wordpiece.spec
    rows, width = (6000 if n == 32 else 2000), n + 4
    ids = torch.randint(999, 30522, (rows, width))
    pad = torch.zeros(rows, width, dtype=torch.bool)
    pad[:, n:] = True
    ids[pad] = spec.pad_id
    out = mask_caption_tokens(
        ids, pad, spec, mask_prob=p, generator=torch.Generator().manual_seed(0)
    )
    k = max(1, min(int(n * p + 0.5), n - 1))
    assert int(masked_count(torch.tensor([n]), p)) == k
    assert out.masked_positions.sum(dim=1).eq(k).all()
    assert not out.masked_positions[:, 0].any()
    assert not out.masked_positions[pad].any()
    torch.testing.assert_close(out.targets, ids[out.masked_positions])
    assert torch.equal(out.input_ids[~out.masked_positions], ids[~out.masked_positions])
    if n == 32 and p == 0.6:
        # Over >= 10^5 draws: 80 % [MASK], 10 % random in range, 10 % unchanged (±0.01).
        new = out.input_ids[out.masked_positions]
        orig = out.targets
        total = new.numel()
        assert total >= 10**5
        is_mask = new == spec.mask_id
        kept = (new == orig) & ~is_mask
        assert abs(is_mask.float().mean().item() - 0.8) < 0.01
        assert abs(kept.float().mean().item() - 0.1) < 0.01
        replaced = new[~is_mask & ~kept]
        assert abs(replaced.numel() / total - 0.1) < 0.01
        assert replaced.min() >= spec.rand_low
        assert replaced.max() <= spec.rand_high


def test_masking_rejects_bad_input(wordpiece: WordPieceTokenizer) -> None:
    ids = torch.tensor([[101, 102]])
    with pytest.raises(ConfigError, match="mask_prob"):
        mask_caption_tokens(
            ids, torch.zeros_like(ids, dtype=torch.bool), wordpiece.spec, mask_prob=1.0
        )
    with pytest.raises(ConfigError, match="fewer than 2"):
        mask_caption_tokens(ids, torch.tensor([[False, True]]), wordpiece.spec)
