"""`geomelt model eval/train` on bad input: one line on stderr naming the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from toy_data import karpathy_dataset

from geomelt.cli import main
from geomelt.model import ConfigError, load


def _one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"images": ["a.jpg"]}, "images[0] is 'a.jpg', not a Karpathy entry"),
        ({"images": [{"filename": "a.jpg", "sentences": "x"}]}, "not a Karpathy entry"),
        ([1, 2], "not a readable Karpathy JSON"),
    ],
)
def test_eval_and_train_refuse_a_dataset_of_the_wrong_shape(
    tmp_path: Path, content: object, message: str
) -> None:
    data = tmp_path / "bad.json"
    data.write_text(json.dumps(content))
    for args in (
        ["model", "eval", "--model", "tiny-random", "--data", str(data), "--no-captioning"],
        ["model", "train", "--data", str(data), "--out", str(tmp_path / "run")],
    ):
        line = _one_line_error(args)
        assert str(data) in line
        assert message in line


def test_train_refuses_an_unknown_preset(tmp_path: Path) -> None:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"preset": "smal"}))
    data = karpathy_dataset(tmp_path / "toy")
    args = ["model", "train", "--config", str(config), "--data", str(data)]
    line = _one_line_error([*args, "--out", str(tmp_path / "run")])
    assert str(config) in line
    assert "unknown preset 'smal'; use one of" in line
    assert not (tmp_path / "run").exists()


def test_a_missing_weights_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = karpathy_dataset(tmp_path / "toy")
    missing = tmp_path / "nope.safetensors"
    line = _one_line_error(["model", "eval", "--model", str(missing), "--data", str(data)])
    assert str(missing) in line
    assert "pass a .safetensors checkpoint path" in line
    # A shipped name whose file is absent (an incomplete checkout) says which file is missing.
    from geomelt.model import api

    monkeypatch.setattr(api, "WEIGHTS_DIR", tmp_path / "weights")
    with pytest.raises(ConfigError, match=r"weights file .*geomelt-small.safetensors is missing"):
        load("geomelt-small")
