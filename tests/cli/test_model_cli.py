"""`geomelt model info` through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from geomelt.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["model", "info", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("preset", "extra", "parameters", "keys"),
    [
        ("base", [], 271_390_731, 496),
        ("base", ["--img-size", "384"], 271_682_571, 496),
        ("base", ["--heads", "retrieval"], 222_167_041, 494),
        ("small", [], 45_873_211, 256),
        ("tiny", ["--heads", "caption"], 15_782_587 - 73_729, 173),
    ],
)
def test_info_json(preset: str, extra: list[str], parameters: int, keys: int) -> None:
    code, output = run("--preset", preset, *extra, "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["preset"] == preset
    assert report["parameters"] == parameters
    assert report["state_dict_keys"] == keys
    assert report["parameters_by_part"]["total"] == parameters


def test_info_base_fingerprint() -> None:
    _, output = run("--preset", "base", "--json")
    assert json.loads(output)["state_dict_keys_sha256"] == (
        "7e428db1a5301aebe23df0d1f6a38f5bc3455e18b7f10890cfbe91d425a656b7"
    )


def test_info_text_output() -> None:
    code, output = run("--preset", "tiny")
    assert code == 0
    assert "parameters" in output
    assert "15782587" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "huge"], "huge"),
        (["--preset", "tiny", "--img-size", "100"], "multiple of patch_size"),
        (["--preset", "tiny", "--heads", "vqa"], "task_heads"),
    ],
)
def test_info_bad_input(args: list[str], message: str) -> None:
    code, output = run(*args)
    assert code == 2
    assert message in output
