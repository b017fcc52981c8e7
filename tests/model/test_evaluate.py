"""Evaluation protocol: identical captions tie exactly, eval/eval-zeroshot JSON reports."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner
from toy_data import karpathy_dataset, scene_dataset

from geomelt.cli import main
from geomelt.model import load
from geomelt.model.data import load_karpathy
from geomelt.model.evaluate import image_inputs_from_files, retrieval_eval, scores_to_metrics


def test_identical_captions_tie_and_count_as_expectation(tmp_path: Path) -> None:
    geomelt = load("tiny-random")
    records = load_karpathy(karpathy_dataset(tmp_path), ["val"])
    images = image_inputs_from_files(records, 224)
    result = retrieval_eval(geomelt.model, geomelt.tokenizer, records, images)
    assert result["images"] == 3
    assert result["captions"] == 15
    assert 0.0 <= result["mR"] <= 100.0
    # Two captions per toy image are the same string: their scores must be bit-identical
    # (a batch-dependent float difference would break the tie rule).
    from geomelt.model.evaluate import _embed_texts

    texts = [c for r in records for c in r.captions]
    emb = _embed_texts(geomelt.model, geomelt.tokenizer, texts, batch_size=4)
    assert torch.equal(emb[0], emb[2])


def test_tie_rule_expectation_on_a_hand_made_case() -> None:
    # 2 images, 1 caption each; image 0's caption ties with image 1's caption.
    scores = torch.tensor([[0.5, 0.5], [0.1, 0.9]])
    metrics = scores_to_metrics(scores, torch.tensor([0, 1]))
    assert metrics["TR@1"] == 75.0  # image 0: 1/2 chance, image 1: certain
    assert metrics["stable"]["TR@1"] == 100.0  # lower index wins the tie


def test_eval_cli_writes_retrieval_and_captioning(tmp_path: Path) -> None:
    data = karpathy_dataset(tmp_path / "toy")
    out = tmp_path / "eval.json"
    args = ["model", "eval", "--model", "tiny-random", "--data", str(data), "--split", "val"]
    result = CliRunner().invoke(main, [*args, "--beams", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {"TR@1", "IR@10", "mR"} <= set(report["retrieval"])
    assert {"CIDEr", "BLEU-4", "METEOR", "ROUGE-L", "BLEU-1"} <= set(report["captioning"])
    bad = CliRunner().invoke(main, [*args[:-1], "test"])
    assert bad.exit_code != 0
    assert "splits present" in bad.output


def test_eval_zeroshot_cli(tmp_path: Path) -> None:
    root = scene_dataset(tmp_path / "scenes", per_class=2)
    out = tmp_path / "zs.json"
    args = ["model", "eval-zeroshot", "--model", "tiny-random", "--images", str(root)]
    result = CliRunner().invoke(main, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["images"] == 6
    assert set(report["per_class"]) == {"red", "green", "blue"}
    assert 0.0 <= report["accuracy"] <= 100.0
