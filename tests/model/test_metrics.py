"""T16 retrieval metrics on a hand-built 2-image x 10-caption score matrix (spec §7.1)."""

from __future__ import annotations

import pytest
import torch

from geomelt.model import ConfigError
from geomelt.model.metrics import retrieval_metrics

# Captions 0-4 belong to image 0, captions 5-9 to image 1.
OWNER = torch.tensor([0] * 5 + [1] * 5)


def test_hand_computed_values() -> None:
    scores = torch.tensor(
        [
            # image 0: best caption is 6 (wrong), own captions rank 2nd.. -> TR@1 miss, TR@5 hit
            [0.8, 0.1, 0.2, 0.3, 0.4, 0.0, 0.9, 0.1, 0.2, 0.3],
            # image 1: own caption 5 ranks first -> hit at every K
            [0.1, 0.2, 0.3, 0.0, 0.5, 0.95, 0.5, 0.4, 0.3, 0.8],
        ]
    )
    m = retrieval_metrics(scores, OWNER, tie_rule="stable")
    assert (m["tr@1"], m["tr@5"], m["tr@10"]) == (50.0, 100.0, 100.0)
    # IR: caption c is a hit at K=1 if its own image scores higher than the other image.
    # captions 0,1,2,3: own 0.8>0.1 yes, 0.1<0.2 no, 0.2<0.3 no, 0.3>0.0 yes, 0.4<0.5 no
    # captions 5..9: 0.95>0.0 yes, 0.5<0.9 no, 0.4>0.1 yes, 0.3>0.2 yes, 0.8>0.3 yes
    assert m["ir@1"] == pytest.approx(60.0)
    assert (m["ir@5"], m["ir@10"]) == (100.0, 100.0)
    assert m["mr"] == pytest.approx((50 + 100 + 100 + 60 + 100 + 100) / 6)
    assert retrieval_metrics(scores, OWNER) == m  # no ties: both rules agree


def test_tie_rules() -> None:
    scores = torch.zeros(2, 10)  # everything tied
    stable = retrieval_metrics(scores, OWNER, tie_rule="stable")
    random = retrieval_metrics(scores, OWNER, tie_rule="random")
    # stable: image 0's captions come first (hit), image 1's come after 5 others (miss at 1, 5).
    assert (stable["tr@1"], stable["tr@5"], stable["tr@10"]) == (50.0, 50.0, 100.0)
    # random: P(one of 5 targets first among 10) = 1/2; within top 5: 1 − C(5,5)/C(10,5).
    assert random["tr@1"] == pytest.approx(50.0)
    assert random["tr@5"] == pytest.approx(100 * (1 - 1 / 252))
    # IR with 2 tied images: own image first with probability 1/2.
    assert random["ir@1"] == pytest.approx(50.0)
    assert stable["ir@1"] == pytest.approx(50.0)  # captions of image 0 hit, of image 1 miss


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="one image index per caption"):
        retrieval_metrics(torch.zeros(2, 10), OWNER[:5])
    with pytest.raises(ConfigError, match="tie_rule"):
        retrieval_metrics(torch.zeros(2, 10), OWNER, tie_rule="worst")
