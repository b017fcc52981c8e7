"""T11 losses and T12 loss balancers (spec §3.3-3.4)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from geomelt.model import ConfigError
from geomelt.model.balancing import DWABalancer, StaticBalancer, UncertaintyBalancer
from geomelt.model.losses import caption_loss, contrastive_loss


def hand_kl(logits: list[float], target: int, eps: float) -> float:
    log_z = math.log(sum(math.exp(z) for z in logits))
    v = len(logits)
    total = 0.0
    for i, z in enumerate(logits):
        q = 1 - eps if i == target else eps / (v - 1)
        total += q * (math.log(q) - (z - log_z))
    return total


LOGITS = [[2.0, 0.5, -1.0, 0.0, 1.0], [0.1, 0.2, 3.0, -0.5, 0.0]]
TARGETS = [0, 3]


def test_caption_loss_matches_hand_computation() -> None:
    per_token = [hand_kl(z, t, 0.1) for z, t in zip(LOGITS, TARGETS, strict=True)]
    logits, targets = torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(TARGETS)
    assert float(caption_loss(logits, targets)) == pytest.approx(sum(per_token) / 2, abs=1e-9)
    # Drop-worst only after drop_worst_after steps, keeping the smaller token loss.
    kwargs = {"drop_worst_ratio": 0.5, "drop_worst_after": 10}
    assert float(caption_loss(logits, targets, step=10, **kwargs)) == pytest.approx(
        sum(per_token) / 2, abs=1e-9
    )
    assert float(caption_loss(logits, targets, step=11, **kwargs)) == pytest.approx(
        min(per_token), abs=1e-9
    )


def test_caption_loss_without_smoothing_is_cross_entropy() -> None:
    logits, targets = torch.tensor(LOGITS), torch.tensor(TARGETS)
    torch.testing.assert_close(
        caption_loss(logits, targets, label_smoothing=0.0), F.cross_entropy(logits, targets)
    )
    with pytest.raises(ConfigError, match="need"):
        caption_loss(logits, targets[:1])


def test_contrastive_loss_hand_and_symmetric() -> None:
    s = torch.tensor([[3.0, 0.5, -1.0], [0.0, 2.0, 1.0], [0.2, -0.3, 1.5]], dtype=torch.float64)

    def ce(m: torch.Tensor) -> float:
        return (
            sum(-float(m[i, i]) + math.log(sum(math.exp(float(x)) for x in m[i])) for i in range(3))
            / 3
        )

    assert float(contrastive_loss(s)) == pytest.approx(0.5 * (ce(s) + ce(s.t())), abs=1e-12)
    assert float(contrastive_loss(s.t())) == pytest.approx(float(contrastive_loss(s)), abs=1e-12)
    with pytest.raises(ConfigError, match="square"):
        contrastive_loss(torch.zeros(2, 3))


def test_contrastive_loss_with_matching_pairs() -> None:
    s = torch.tensor([[3.0, 2.9, -1.0], [2.8, 3.0, 1.0], [0.2, -0.3, 1.5]], dtype=torch.float64)
    diagonal = torch.eye(3, dtype=torch.bool)
    assert float(contrastive_loss(s, diagonal)) == pytest.approx(float(contrastive_loss(s)))
    # Images 0 and 1 share a caption: row 0's target is half on column 0, half on column 1,
    # and training now pulls their cross similarity up instead of pushing it down.
    pairs = diagonal.clone()
    pairs[0, 1] = pairs[1, 0] = True
    grads = []
    for positives in (None, pairs):
        leaf = s.clone().requires_grad_(True)
        contrastive_loss(leaf, positives).backward()
        assert leaf.grad is not None
        grads.append(float(leaf.grad[0, 1]))
    assert grads[0] > 0 > grads[1]
    row0 = -0.5 * (F.log_softmax(s[0], 0)[0] + F.log_softmax(s[0], 0)[1])
    rows = [row0, -0.5 * F.log_softmax(s[1], 0)[:2].sum(), -F.log_softmax(s[2], 0)[2]]
    st = s.t()
    cols = [
        -0.5 * F.log_softmax(st[0], 0)[:2].sum(),
        -0.5 * F.log_softmax(st[1], 0)[:2].sum(),
        -F.log_softmax(st[2], 0)[2],
    ]
    expected = 0.5 * (sum(rows) / 3 + sum(cols) / 3)
    assert float(contrastive_loss(s, pairs)) == pytest.approx(float(expected), abs=1e-12)
    with pytest.raises(ConfigError, match="diagonal"):
        contrastive_loss(s, torch.zeros(3, 3, dtype=torch.bool))


def test_dwa_weights() -> None:
    dwa = DWABalancer(period=2)
    assert dwa.weights() == [1.0, 1.0]
    for losses in ([2.0, 1.0], [2.0, 1.0]):
        dwa.observe(losses)
    assert dwa.weights() == [1.0, 1.0]  # only one period closed
    for losses in ([1.0, 1.5], [1.0, 0.5]):
        dwa.observe(losses)
    w = dwa.weights()
    assert w == pytest.approx([0.8756, 1.1244], abs=1e-4)
    assert sum(w) == pytest.approx(2.0)
    restored = DWABalancer()
    restored.load_state(dwa.state())
    assert restored.weights() == w


def test_dwa_combine_uses_constant_weights() -> None:
    dwa = DWABalancer(period=1)
    a, b = torch.tensor(2.0, requires_grad=True), torch.tensor(1.0, requires_grad=True)
    dwa.combine([a, b]).backward()
    assert (float(a.grad), float(b.grad)) == (1.0, 1.0)
    assert dwa.period_means == [[2.0, 1.0]]
    static = StaticBalancer((0.5, 2.0))
    assert float(static.combine([torch.tensor(2.0), torch.tensor(1.0)])) == 3.0


def test_uncertainty_gradient_and_state_round_trip() -> None:
    bal = UncertaintyBalancer()
    with torch.no_grad():
        bal.log_vars.copy_(torch.tensor([0.3, -0.2]))
    losses = [torch.tensor(1.7), torch.tensor(0.4)]
    bal.combine(losses).backward()
    expected = [-math.exp(-0.3) * 1.7 + 0.5, -math.exp(0.2) * 0.4 + 0.5]
    assert bal.log_vars.grad.tolist() == pytest.approx(expected, abs=1e-6)
    other = UncertaintyBalancer()
    other.load_state(bal.state())
    torch.testing.assert_close(other.log_vars.detach(), bal.log_vars.detach())
