"""T1 parameter counts, config validation and presets (spec §2.6, §6.5-T1)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from geomelt.model import ConfigError, GeoMeltConfig, create_model, get_config, list_presets
from geomelt.model.presets import XLMR_VOCAB

# (preset, vocab) -> backbone@224, retrieval, caption, total@224, backbone@384, total@384
TABLE = {
    ("base", 64010): (220_987_392, 1_179_649, 49_223_690, 271_390_731, 221_279_232, 271_682_571),
    ("small", 64010): (46_686_720, 294_913, 24_643_850, 71_625_483, 46_832_640, 71_771_403),
    ("small", 30522): (33_827_328, 294_913, 11_750_970, 45_873_211, 33_973_248, 46_019_131),
    ("tiny", 64010): (16_247_808, 73_729, 12_353_930, 28_675_467, 16_320_768, 28_748_427),
    ("tiny", 30522): (9_818_112, 73_729, 5_890_746, 15_782_587, 9_891_072, 15_855_547),
}


def config_for(preset: str, vocab: int, img_size: int = 224) -> GeoMeltConfig:
    config = get_config(preset, img_size=img_size)
    kind = "xlmr" if vocab == XLMR_VOCAB else "wordpiece"
    return config.replace(text=dataclasses.replace(config.text, vocab_size=vocab, tokenizer=kind))


def measured(model: torch.nn.Module) -> dict[str, int]:
    counts = {"backbone": 0, "retrieval": 0, "caption": 0}
    for name, param in model.named_parameters():
        if name.startswith("beit3."):
            counts["backbone"] += param.numel()
        elif name.startswith("mlm_head."):
            counts["caption"] += param.numel()
        else:
            counts["retrieval"] += param.numel()
    counts["total"] = sum(counts.values())
    return counts


@pytest.mark.parametrize(("preset", "vocab"), sorted(TABLE))
def test_closed_form_matches_table(preset: str, vocab: int) -> None:
    bb224, ret, cap, tot224, bb384, tot384 = TABLE[(preset, vocab)]
    at224 = config_for(preset, vocab).parameter_counts()
    at384 = config_for(preset, vocab, 384).parameter_counts()
    assert at224 == {"backbone": bb224, "retrieval": ret, "caption": cap, "total": tot224}
    assert (at384["backbone"], at384["total"]) == (bb384, tot384)


@pytest.mark.parametrize(("preset", "vocab"), sorted(TABLE))
@pytest.mark.parametrize("img_size", [224, 384])
def test_meta_build_counts_match_table(preset: str, vocab: int, img_size: int) -> None:
    bb224, ret, cap, tot224, bb384, tot384 = TABLE[(preset, vocab)]
    model = create_model(config_for(preset, vocab, img_size), device="meta")
    counts = measured(model)
    assert counts["retrieval"] == ret
    assert counts["caption"] == cap
    assert (counts["backbone"], counts["total"]) == (
        (bb224, tot224) if img_size == 224 else (bb384, tot384)
    )


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_instantiated_counts(preset: str) -> None:
    model = create_model(preset)
    assert measured(model) == get_config(preset).parameter_counts()
    assert model.parameter_count() == TABLE[(preset, 30522)][3]


@pytest.mark.slow
def test_instantiated_base_counts() -> None:
    model = create_model("base")
    assert measured(model) == {
        "backbone": 220_987_392,
        "retrieval": 1_179_649,
        "caption": 49_223_690,
        "total": 271_390_731,
    }


def test_heads_subsets_change_counts() -> None:
    retrieval_only = get_config("base", task_heads=("retrieval",)).parameter_counts()["total"]
    caption_only = get_config("base", task_heads=("caption",)).parameter_counts()["total"]
    assert retrieval_only == 222_167_041
    assert caption_only == 270_211_082
    assert (
        get_config("base", img_size=480, task_heads=("caption",)).parameter_counts()["total"]
        == 270_751_754
    )
    model = create_model(get_config("tiny", task_heads=("retrieval",)), device="meta")
    assert model.mlm_head is None
    with pytest.raises(ConfigError, match="caption head"):
        model.captioning_head()


def test_presets_listed_and_unknown_name_lists_them() -> None:
    assert list_presets() == ["base", "small", "small-hybrid", "tiny"]
    with pytest.raises(ConfigError, match="available presets: base, small, small-hybrid, tiny"):
        get_config("huge")


def test_base_is_beit3_base() -> None:
    config = get_config("base")
    assert (config.embed_dim, config.layers, config.heads, config.ffn_dim) == (768, 12, 12, 3072)
    assert (config.vision.patch_size, config.vision.img_size, config.text.vocab_size) == (
        16,
        224,
        64010,
    )
    assert get_config("small").text.vocab_size == 30522
    assert get_config("tiny").text.tokenizer == "wordpiece"


@pytest.mark.parametrize(
    "changes",
    [{"heads": 5}, {"task_heads": ("retrieval", "vqa")}, {"drop_path": 1.5}, {"layers": 0}],
)
def test_invalid_configs_rejected(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        get_config("tiny").replace(**changes)


def test_invalid_image_size_names_fix() -> None:
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        get_config("tiny", img_size=100)


def test_config_dict_round_trip_and_frozen() -> None:
    config = get_config("small", img_size=384, task_heads=("caption",))
    assert GeoMeltConfig.from_dict(config.to_dict()) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.layers = 3  # type: ignore[misc]
    with pytest.raises(ConfigError, match="malformed"):
        GeoMeltConfig.from_dict({"name": "x"})


@torch.no_grad()
def test_initialisation_follows_official_wrapper() -> None:
    model = create_model(get_config("tiny", img_size=32), seed=0)
    assert not any(p.is_meta for p in model.parameters())
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            assert float(module.weight.abs().max()) <= 0.02, name
            assert 0.009 < float(module.weight.std()) < 0.0125, name  # 0.02·0.538 for ±1σ
            if module.bias is not None:
                assert not module.bias.any(), name
        elif isinstance(module, torch.nn.LayerNorm):
            assert module.weight.eq(1).all(), name
            assert not module.bias.any(), name
    vision = model.beit3.vision_embed
    assert not vision.cls_token.any()
    assert not vision.mask_token.any()
    assert float(model.logit_scale) == pytest.approx(2.65926, abs=1e-5)
    assert float(model.beit3.text_embed.weight.std()) == pytest.approx(192**-0.5, rel=0.02)
    assert float(model.beit3.encoder.embed_positions.B.weight.std()) == pytest.approx(1, rel=0.02)
    again = create_model(get_config("tiny", img_size=32), seed=0)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True)
    )
