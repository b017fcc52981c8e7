"""Training loop on the tiny preset: losses fall, resume continues, the shared-pass losses
equal the two-pass ones, hybrid stem + tied weights round-trip through a file, a tuned stem
tail trains and is stored."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from toy_data import karpathy_dataset

from geomelt.model import ConfigError, create_model, get_config, load, load_tokenizer
from geomelt.model.config import GeoMeltConfig, VisionConfig
from geomelt.model.data import ImageRecord, UniqueImageBatchSampler, load_karpathy
from geomelt.model.image import preprocess_images
from geomelt.model.stem import EfficientNetLite0Stem
from geomelt.model.train import (
    TrainSettings,
    _BatchStream,
    export,
    interpolate,
    train,
    with_stem_tuned_from,
)
from geomelt.model.training import task_losses, task_losses_shared

TINY = {
    "preset": "tiny",
    "img_size": 32,
    "init": "scratch",
    "batch_size": 3,
    "lr": 1e-3,
    "warmup_fraction": 0.0,
    "min_lr": 1e-3,
    "drop_path": 0.0,
    "log_every": 1,
    "checkpoint_every": 2,
}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_losses_fall_and_training_resumes(tmp_path: Path) -> None:
    records = load_karpathy(karpathy_dataset(tmp_path / "data"), ["train"])
    out = tmp_path / "run"
    settings = TrainSettings(**TINY, max_steps=4, balancing="uncertainty")
    train(records, settings, out)
    first = _lines(out / "metrics.jsonl")
    assert [r["step"] for r in first] == [1, 2, 3, 4]
    assert {"itc", "cap", "w_itc", "w_cap", "s_itc", "lr"} <= set(first[0])
    longer = TrainSettings(**TINY, max_steps=12, balancing="uncertainty")
    model = train(records, longer, out)
    rows = _lines(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 13))  # resumed at 5, not 1
    early = sum(r["cap"] for r in rows[:4]) / 4
    late = sum(r["cap"] for r in rows[-4:]) / 4
    assert late < early
    assert rows[-1]["s_itc"] != 0.0  # uncertainty weights are learned
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 12
    path = tmp_path / "m.safetensors"
    export(model, path, dtype=None)
    assert load(path).config.vision.img_size == 32


def test_stop_after_keeps_the_whole_runs_schedule(tmp_path: Path) -> None:
    records = load_karpathy(karpathy_dataset(tmp_path / "data"), ["train"])
    settings = TrainSettings(**{**TINY, "min_lr": 0.0}, max_steps=8)
    train(records, settings, tmp_path / "whole")
    train(records, settings, tmp_path / "part", stop_after=3)
    whole, part = (
        _lines(tmp_path / "whole" / "metrics.jsonl"),
        _lines(tmp_path / "part" / "metrics.jsonl"),
    )
    assert [r["step"] for r in part] == [1, 2, 3]
    assert [r["lr"] for r in part] == [r["lr"] for r in whole[:3]]  # not a 3-step cosine
    assert part[-1]["lr"] > 0.5 * TINY["lr"]


def test_dwa_weights_move_after_two_periods(tmp_path: Path) -> None:
    records = load_karpathy(karpathy_dataset(tmp_path / "data"), ["train"])
    settings = TrainSettings(**TINY, max_steps=5, balancing="dwa", dwa_period=2)
    train(records, settings, tmp_path / "run")
    rows = _lines(tmp_path / "run" / "metrics.jsonl")
    assert rows[0]["w_itc"] == rows[0]["w_cap"] == 1.0
    assert rows[-1]["w_itc"] != 1.0
    assert abs(rows[-1]["w_itc"] + rows[-1]["w_cap"] - 2.0) < 1e-6


def _three_captions() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ids, padding = torch.full((3, 9), 1037), torch.zeros(3, 9, dtype=torch.bool)
    ids[:, 0], ids[0, 8], ids[1, 5] = 101, 102, 102
    ids[2, 3] = 2003
    padding[1, 6:] = True
    ids[padding] = 0
    return pixels, ids, padding


@pytest.mark.parametrize("rows", [None, [0, 2]])
def test_shared_image_pass_matches_two_passes(tiny64, wordpiece, rows) -> None:
    pixels, ids, padding = _three_captions()
    spec = wordpiece.spec
    kw = {"step": 0, "caption_rows": None if rows is None else torch.tensor(rows)}
    a = task_losses(tiny64, pixels, ids, padding, spec, generator=torch.Generator(), **kw)
    b = task_losses_shared(tiny64, pixels, ids, padding, spec, generator=torch.Generator(), **kw)
    torch.testing.assert_close(a.itc, b.itc)
    torch.testing.assert_close(a.cap, b.cap)


def test_caption_rows_limit_the_captioning_loss(tiny64, wordpiece) -> None:
    pixels, ids, padding = _three_captions()
    spec = wordpiece.spec
    some = task_losses_shared(
        tiny64, pixels, ids, padding, spec, step=0, generator=torch.Generator(),
        caption_rows=torch.tensor([0, 2]),
    )  # fmt: skip
    alone = task_losses_shared(
        tiny64, pixels[[0, 2]], ids[[0, 2]], padding[[0, 2]], spec, step=0,
        generator=torch.Generator(),
    )  # fmt: skip
    every = task_losses_shared(tiny64, pixels, ids, padding, spec, step=0)
    torch.testing.assert_close(some.cap, alone.cap)  # rows 0 and 2 only
    torch.testing.assert_close(some.itc, every.itc)  # ITC still sees the whole batch
    none = task_losses_shared(
        tiny64, pixels, ids, padding, spec, step=0, caption_rows=torch.tensor([], dtype=torch.long)
    )
    assert float(none.cap.detach()) == 0.0
    (none.itc + none.cap).backward()  # still one graph


def test_batches_caption_only_human_captions(tmp_path: Path) -> None:
    from toy_data import scene_dataset

    from geomelt.model.data import load_scenes
    from geomelt.model.train import _Batcher

    human = load_karpathy(karpathy_dataset(tmp_path / "toy"), ["train"])[:2]
    weak = load_scenes(scene_dataset(tmp_path / "scenes", per_class=5), "train")[:2]
    records = [human[0], weak[0], human[1], weak[1]]
    model = create_model(get_config("tiny", img_size=32), seed=0)
    tokenizer = load_tokenizer("wordpiece")
    batch = [(0, 0), (1, 0), (2, 0), (3, 0)]
    rng = random.Random(0)  # noqa: S311 -- augmentation draws, not security
    for weak_too, expected in [(False, [0, 2]), (True, None)]:
        settings = TrainSettings(**TINY, caption_class_captions=weak_too)
        rows = _Batcher(records, tokenizer, model, settings, None)(batch, rng, torch.device("cpu"))
        got = rows.caption_rows
        assert (got if got is None else got.tolist()) == expected


def test_mixed_precision_is_logged_and_can_be_switched_off(tmp_path: Path) -> None:
    from geomelt.model.train import _has_bf16

    records = load_karpathy(karpathy_dataset(tmp_path / "data"), ["train"])
    for enabled in (False, True):
        out = tmp_path / f"run{enabled}"
        train(records, TrainSettings(**TINY, max_steps=1, mixed_precision=enabled), out)
        assert _lines(out / "metrics.jsonl")[0]["bf16"] is (
            enabled and _has_bf16(torch.device("cpu"))
        )


def test_hybrid_stem_tied_fp16_round_trip(tmp_path: Path) -> None:
    config = get_config("tiny").replace(
        vision=VisionConfig(img_size=64, patch_size=32, stem="efficientnet-lite0"),
        tie_word_embeddings=True,
    )
    model = create_model(config, seed=0)
    keys = model.state_dict().keys()
    assert not [k for k in keys if "stem" in k]  # frozen stem is never stored
    assert "mlm_head.weight" in keys  # key parity kept
    assert model.mlm_head.weight is model.beit3.text_embed.weight
    assert model.parameter_count() == config.parameter_counts()["total"]
    path = tmp_path / "h.safetensors"
    export(model, path, dtype=torch.float16)
    loaded = load(path)
    assert loaded.dtype == torch.float32
    assert loaded.model.mlm_head.weight is loaded.model.beit3.text_embed.weight
    pixels = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    reference = model.half().float().eval()
    reference.tie_weights()
    with torch.no_grad():
        expected = reference.encode_images(loaded.pixels(pixels))
    torch.testing.assert_close(loaded.encode_images(pixels), expected, atol=2e-3, rtol=0)
    assert load_tokenizer("wordpiece").spec == loaded.tokenizer.spec


def test_train_cli_mixes_sources_and_exports(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from toy_data import scene_dataset

    from geomelt.cli import main

    data = karpathy_dataset(tmp_path / "toy")
    scenes = scene_dataset(tmp_path / "scenes", per_class=5)
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({**TINY, "epochs": 1}))
    out = tmp_path / "run"
    args = ["model", "train", "--config", str(config), "--out", str(out), "--max-steps", "2"]
    result = CliRunner().invoke(main, [*args, "--data", f"{data}@2", "--data", f"scenes:{scenes}"])
    assert result.exit_code == 0, result.output
    output = result.output
    report = json.loads(output[output.index('{"model"') :].splitlines()[0])
    assert Path(report["model"]).is_file()
    assert len(_lines(out / "metrics.jsonl")) == 2
    bad = CliRunner().invoke(main, [*args, "--data", "scenes:/no/such/folder"])
    assert bad.exit_code != 0
    assert "does not exist" in bad.output


def test_interpolate_blends_every_weight_once(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from geomelt.cli import main

    config = get_config("tiny", img_size=32).replace(tie_word_embeddings=True)
    paths = []
    for seed in (0, 1):
        paths.append(tmp_path / f"m{seed}.safetensors")
        export(create_model(config, seed=seed), paths[-1], dtype=None)
    a, b = load(paths[0]).model, load(paths[1]).model
    expected = {k: 0.75 * v + 0.25 * b.state_dict()[k] for k, v in a.state_dict().items()}
    out = tmp_path / "mix.safetensors"
    args = ["model", "interpolate", str(paths[0]), str(paths[1]), "--alpha", "0.25"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    mixed = load(out).model
    assert mixed.mlm_head.weight is mixed.beit3.text_embed.weight
    for name, value in mixed.state_dict().items():  # tied text_embed blended once, not twice
        torch.testing.assert_close(value, expected[name], atol=2e-3, rtol=2e-3)
    other = tmp_path / "other.safetensors"
    export(create_model(get_config("tiny", img_size=64), seed=0), other, dtype=None)
    bad = CliRunner().invoke(
        main, [*args[:2], str(paths[0]), str(other), "--alpha", "0.5", "--out", str(out)]
    )
    assert bad.exit_code != 0
    assert "same configuration" in bad.output


HYBRID_TINY = {
    **TINY,
    "img_size": 64,
    "batch_size": 2,
    "mixed_precision": True,  # the tuned tail must stay fp32 under autocast
}


def _tiny_hybrid(tune_from: int | None) -> GeoMeltConfig:
    return get_config("tiny").replace(
        vision=VisionConfig(
            img_size=64, patch_size=32, stem="efficientnet-lite0", stem_tune_from=tune_from
        ),
        tie_word_embeddings=True,
    )


def test_tuned_stem_tail_is_stored_and_starts_from_imagenet(tmp_path: Path) -> None:
    frozen = create_model(_tiny_hybrid(None), seed=0).eval()
    tuned = with_stem_tuned_from(frozen, 11).eval()
    stem = tuned.beit3.vision_embed.stem
    stored = [k for k in tuned.state_dict() if ".stem." in k]
    assert stored
    assert {k.split(".")[-1].split("_")[0] for k in stored} == {
        "b11",
        "b12",
        "b13",
        "b14",
        "b15",
        "head",
    }
    assert tuned.parameter_count() == tuned.geomelt_config.parameter_counts()["total"]
    pixels = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    x = preprocess_images(pixels, 64)
    with torch.no_grad():
        torch.testing.assert_close(tuned.encode_images(x), frozen.encode_images(x))
        features = stem.frozen_features(x)
        assert features.shape[1] == stem.feature_channels == 112
        # Cached frozen features give what pixels give.
        torch.testing.assert_close(tuned.encode_images(features), tuned.encode_images(x))
        stem.b12_dw_w.mul_(1.5)  # as training would change it
        expected = tuned.encode_images(x)
    path = tmp_path / "t.safetensors"
    export(tuned, path, dtype=None)
    loaded = load(path)  # fills the frozen prefix from the package, keeps the stored tail
    assert loaded.config.vision.stem_tune_from == 11
    torch.testing.assert_close(loaded.encode_images(pixels), expected)
    with pytest.raises(ConfigError, match="already tunes from block 11"):
        with_stem_tuned_from(tuned, 12)
    # Tuning deeper keeps the learned blocks and starts the newly tuned ones from ImageNet.
    deeper = with_stem_tuned_from(tuned, 8).beit3.vision_embed.stem
    torch.testing.assert_close(deeper.b12_dw_w, stem.b12_dw_w, rtol=0, atol=0)
    torch.testing.assert_close(
        deeper.b9_dw_w, with_stem_tuned_from(frozen, 8).beit3.vision_embed.stem.b9_dw_w
    )
    assert deeper.feature_channels == 80
    with pytest.raises(ConfigError, match="needs a hybrid stem"):
        VisionConfig(stem_tune_from=11)
    assert EfficientNetLite0Stem(tune_from=16).feature_channels == 320  # head conv only
    with pytest.raises(ConfigError, match=r"use 1\.\.16"):
        EfficientNetLite0Stem(tune_from=0)
    # A frozen-stem start blends with a tuned end as if its tail were ImageNet's.
    halfway = interpolate(frozen, copy.deepcopy(tuned), 0.5)
    imagenet = with_stem_tuned_from(frozen, 11).beit3.vision_embed.stem.b12_dw_w
    torch.testing.assert_close(
        halfway.beit3.vision_embed.stem.b12_dw_w, (imagenet + stem.b12_dw_w) / 2
    )


def test_training_tunes_the_stem_tail_only(tmp_path: Path) -> None:
    records = load_karpathy(karpathy_dataset(tmp_path / "data"), ["train"])
    start = create_model(_tiny_hybrid(None), seed=0)
    settings = TrainSettings(**HYBRID_TINY, max_steps=2, stem_tune_from=14)
    model = train(records, settings, tmp_path / "run", feature_cache=tmp_path / "cache",
                  init_checkpoint=start)  # fmt: skip
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["s64-b14"]
    reference = with_stem_tuned_from(create_model(_tiny_hybrid(None), seed=0), 14)
    trained, initial = model.beit3.vision_embed.stem, reference.beit3.vision_embed.stem
    assert trained.b14_dw_w.dtype == torch.float32
    assert not torch.equal(trained.b14_dw_w, initial.b14_dw_w)  # the tail learned
    assert not torch.equal(trained.head_w, initial.head_w)
    torch.testing.assert_close(trained.b13_dw_w, initial.b13_dw_w, rtol=0, atol=0)  # frozen


def test_batch_stream_crosses_epochs_of_different_lengths() -> None:
    # Weight 1.5 draws a record once or twice at random, so epochs differ in length; a run
    # once indexed epoch 1 with epoch 0's length and stopped with an IndexError.
    records = [ImageRecord(Path(f"{i}.jpg"), ("a", "b"), "toy", weight=1.5) for i in range(40)]
    sampler = UniqueImageBatchSampler(records, 8, seed=0)
    epochs = [sampler.epoch(e) for e in range(6)]
    assert len({len(e) for e in epochs}) > 1
    expected = [batch for epoch in epochs for batch in epoch]
    stream = _BatchStream(sampler)
    assert [stream[step] for step in range(len(expected))] == expected
    assert stream[3] == expected[3]  # a resumed run may go back


def test_optimiser_groups_follow_the_model_s_parameter_roles() -> None:
    """Roles come from the model (not from names): decay, and the faster head lr."""
    from geomelt.model.lora import LoraSettings, apply_lora
    from geomelt.model.train import TrainSettings, _param_groups

    settings = TrainSettings(preset="tiny", init="minilm")

    def roles(trainable: torch.nn.Module, model: Any) -> dict[int, tuple[bool, bool]]:
        groups = _param_groups(trainable, model, settings, [])
        return {
            id(p): (g["weight_decay"] == 0.0, g["lr_scale"] > 1.0)
            for g in groups
            for p in g["params"]
        }

    model = create_model(get_config("tiny"), seed=0)
    role = roles(model, model)
    assert role[id(model.beit3.vision_embed.cls_token)] == (True, True)  # no decay, not warm
    assert model.logit_scale is not None
    assert role[id(model.logit_scale)][0]
    assert not role[id(model.beit3.text_embed.weight)][1]  # warm-started: base lr
    # LoRA adapters inside the language experts learn at the base lr, as the experts would.
    wrapped = apply_lora(model, LoraSettings())
    role = roles(wrapped, model)
    language = [p for p in model.language_parameters() if p.requires_grad]
    assert language
    assert not any(role[id(p)][1] for p in language)
    assert any(role[id(p)][1] for p in wrapped.parameters() if p.requires_grad)
