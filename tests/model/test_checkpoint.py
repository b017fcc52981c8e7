"""T8 official loader round trip and interpolation; native safetensors checkpoints (§6)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from geomelt.model import (
    CheckpointError,
    GeoMeltModel,
    create_model,
    export_official,
    get_config,
    load_official,
    read_checkpoint,
    save_checkpoint,
)
from geomelt.model.checkpoint import VISION_TABLE, interpolate_vision_positions
from geomelt.model.tokenizer import WordPieceTokenizer

HEAD_KEYS = {
    "vision_head.weight",
    "language_head.weight",
    "logit_scale",
    "mlm_head.weight",
    "mlm_head.bias",
}


def reference_interpolation(table: torch.Tensor, new_grid: int) -> torch.Tensor:
    """§6.3 written out independently: keep 3 rows, resize the row-major grid bicubically."""
    old_grid = int((table.shape[0] - 3) ** 0.5)
    grid = table[3:].reshape(old_grid, old_grid, -1).permute(2, 0, 1)[None]
    resized = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    return torch.cat([table[:3], resized[0].permute(1, 2, 0).reshape(new_grid * new_grid, -1)])


def assert_same_state(a: GeoMeltModel, b: GeoMeltModel, skip: set[str] = frozenset()) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if key not in skip:
            assert torch.equal(sa[key], sb[key]), key


def round_trip(preset: str, tmp_path: Path) -> None:
    source = create_model(preset, seed=1)
    path = tmp_path / "official.pth"
    export_official(source, path)
    assert set(torch.load(path, weights_only=True)) == {"model"}
    # (a) same size: bit-identical tensors and outputs
    target = create_model(preset, seed=2)
    report = load_official(target, path)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    assert_same_state(source, target)
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(source.image_states(pixels), target.image_states(pixels))
    # (b) 224 -> 384: 199 -> 579 rows
    big = create_model(get_config(preset, img_size=384), seed=3)
    report = load_official(big, path)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    assert report.interpolated == [VISION_TABLE]
    new, old = big.state_dict()[VISION_TABLE], source.state_dict()[VISION_TABLE]
    assert new.shape == (579, source.geomelt_config.embed_dim)
    assert torch.equal(new[:3], old[:3])
    torch.testing.assert_close(new, reference_interpolation(old, 24), rtol=0, atol=1e-6)
    assert_same_state(source, big, skip={VISION_TABLE})


def test_official_round_trip_tiny(tmp_path: Path) -> None:
    round_trip("tiny", tmp_path)


@pytest.mark.slow
def test_official_round_trip_base(tmp_path: Path) -> None:
    round_trip("base", tmp_path)


def test_same_size_interpolation_is_identity() -> None:
    table = torch.randn(199, 8)
    assert torch.equal(interpolate_vision_positions(table, 199), table)
    torch.testing.assert_close(reference_interpolation(table, 14), table, rtol=0, atol=1e-6)
    with pytest.raises(CheckpointError, match="square"):
        interpolate_vision_positions(torch.randn(200, 8), 579)


def test_backbone_only_file_with_extra_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = create_model("tiny", seed=1)
    state = {k: v for k, v in source.state_dict().items() if k.startswith("beit3.")}
    state["beit3.vqkd_head.weight"] = torch.zeros(3, 3)
    path = tmp_path / "pretrained.pth"
    torch.save({"module": state, "args": None}, path)
    target = create_model("tiny", seed=2)
    with caplog.at_level(logging.WARNING):
        report = load_official(target, path)
    assert set(report.missing) == HEAD_KEYS
    assert report.unexpected == ["beit3.vqkd_head.weight"]
    assert "beit3.vqkd_head.weight" in caplog.text


def test_lm_head_alias_and_plain_dict() -> None:
    source = create_model("tiny", seed=1)
    state = source.state_dict()
    state = {("lm_head." + k[9:] if k.startswith("mlm_head.") else k): v for k, v in state.items()}
    target = create_model("tiny", seed=2)
    report = load_official(target, state)
    assert report.renamed == ["lm_head.weight", "lm_head.bias"]
    assert report.missing == []
    assert torch.equal(target.mlm_head.bias, source.mlm_head.bias)


def test_vocab_map_and_mismatch_errors() -> None:
    source = create_model("tiny", seed=1)
    state = source.state_dict()
    wide = dict(state)
    extra = torch.randn(5, 192)
    wide["beit3.text_embed.weight"] = torch.cat([state["beit3.text_embed.weight"], extra])
    wide["mlm_head.weight"] = torch.cat([state["mlm_head.weight"], extra])
    wide["mlm_head.bias"] = torch.cat([state["mlm_head.bias"], torch.zeros(5)])
    target = create_model("tiny", seed=2)
    with pytest.raises(CheckpointError, match="vocab_map"):
        load_official(target, dict(wide))
    vocab_map = torch.arange(30522)
    vocab_map[0] = 30522 + 4  # model row 0 takes the file's last row
    load_official(target, dict(wide), vocab_map=vocab_map)
    assert torch.equal(target.beit3.text_embed.weight[0], extra[4])
    assert torch.equal(target.beit3.text_embed.weight[1:], state["beit3.text_embed.weight"][1:])
    small = create_model("small", device="meta")
    with pytest.raises(CheckpointError, match="preset 'small'"):
        load_official(small, dict(state))


def test_unreadable_official_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_official(create_model("tiny", device="meta"), bad)
    with pytest.raises(CheckpointError, match="no such file"):
        load_official(create_model("tiny", device="meta"), tmp_path / "missing.pth")


def test_native_round_trip_and_sha(tmp_path: Path, wordpiece: WordPieceTokenizer) -> None:
    model = create_model("tiny", seed=1)
    path = tmp_path / "m.safetensors"
    digest = save_checkpoint(
        model, path, tokenizer=wordpiece.spec, extra={"loss_balancer": {"a": 1}}
    )
    ckpt = read_checkpoint(path)
    assert ckpt.sha256 == digest
    assert ckpt.config == model.geomelt_config
    assert ckpt.tokenizer == wordpiece.spec
    assert ckpt.extra == {"loss_balancer": {"a": 1}}
    assert set(ckpt.state_dict) == set(model.state_dict())
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in model.state_dict().items())
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        read_checkpoint(path)
    (tmp_path / "m.safetensors.sha256").unlink()
    with pytest.raises(CheckpointError, match=r"missing m\.safetensors\.sha256"):
        read_checkpoint(path)


def test_export_refuses_unmerged_lora(tmp_path: Path) -> None:
    from geomelt.model import LoraSettings, apply_lora

    peft_model = apply_lora(create_model(get_config("tiny", img_size=32)), LoraSettings())
    with pytest.raises(CheckpointError, match="merge_lora first"):
        export_official(peft_model, tmp_path / "x.pth")
