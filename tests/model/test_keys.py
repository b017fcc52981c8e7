"""T2 state_dict keys equal the official BEiT-3 ones (spec §2.5), via meta-device builds."""

from __future__ import annotations

import hashlib

import pytest

from geomelt.model import create_model, get_config

BACKBONE_SHA = "c542cef02a51ff7daefd40f8069e737ffe6c91d888adf4de58c9b9b76b9a87bd"
ALL_SHA = "7e428db1a5301aebe23df0d1f6a38f5bc3455e18b7f10890cfbe91d425a656b7"


def expected_base_keys(d: int = 768, f: int = 3072, layers: int = 12, v: int = 64010) -> dict:
    """The expansion of the §2.5 pattern table: key -> shape."""
    keys: dict[str, tuple[int, ...]] = {
        "beit3.text_embed.weight": (v, d),
        "beit3.vision_embed.proj.weight": (d, 3, 16, 16),
        "beit3.vision_embed.proj.bias": (d,),
        "beit3.vision_embed.cls_token": (1, 1, d),
        "beit3.vision_embed.mask_token": (1, 1, d),
        "beit3.encoder.embed_positions.A.weight": (199, d),
        "beit3.encoder.embed_positions.B.weight": (1024, d),
        "vision_head.weight": (d, d),
        "language_head.weight": (d, d),
        "logit_scale": (),
        "mlm_head.weight": (v, d),
        "mlm_head.bias": (v,),
    }
    for e in "AB":
        keys[f"beit3.encoder.layer_norm.{e}.weight"] = (d,)
        keys[f"beit3.encoder.layer_norm.{e}.bias"] = (d,)
        for i in range(layers):
            p = f"beit3.encoder.layers.{i}."
            for proj in "qkv":
                keys[f"{p}self_attn.{proj}_proj.{e}.weight"] = (d, d)
                keys[f"{p}self_attn.{proj}_proj.{e}.bias"] = (d,)
            keys[f"{p}self_attn.out_proj.{e}.weight"] = (d, d)
            keys[f"{p}self_attn.out_proj.{e}.bias"] = (d,)
            for ln in ("self_attn.inner_attn_ln", "self_attn_layer_norm", "final_layer_norm"):
                keys[f"{p}{ln}.{e}.weight"] = (d,)
                keys[f"{p}{ln}.{e}.bias"] = (d,)
            keys[f"{p}ffn.{e}.fc1.weight"] = (f, d)
            keys[f"{p}ffn.{e}.fc1.bias"] = (f,)
            keys[f"{p}ffn.{e}.ffn_layernorm.weight"] = (f,)
            keys[f"{p}ffn.{e}.ffn_layernorm.bias"] = (f,)
            keys[f"{p}ffn.{e}.fc2.weight"] = (d, f)
            keys[f"{p}ffn.{e}.fc2.bias"] = (d,)
    return keys


def fingerprint(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def base_state() -> dict:
    return create_model("base", device="meta").state_dict()


def test_base_keys_and_shapes_equal_spec_expansion(base_state: dict) -> None:
    got = {k: tuple(v.shape) for k, v in base_state.items()}
    assert got == expected_base_keys()
    assert len(got) == 496
    assert sum(k.startswith("beit3.") for k in got) == 491


def test_base_fingerprints(base_state: dict) -> None:
    keys = list(base_state)
    assert fingerprint([k for k in keys if k.startswith("beit3.")]) == BACKBONE_SHA
    assert fingerprint(keys) == ALL_SHA


def test_state_dict_has_no_buffers(base_state: dict) -> None:
    model = create_model("base", device="meta")
    assert set(base_state) == {name for name, _ in model.named_parameters()}
    assert list(model.buffers()) == []


def test_attention_registration_order(base_state: dict) -> None:
    names = [k for k in base_state if k.startswith("beit3.encoder.layers.0.self_attn.")]
    order = [n.split(".")[5] for n in names if n.endswith("A.weight")]
    assert order == ["k_proj", "v_proj", "q_proj", "out_proj", "inner_attn_ln"]


@pytest.mark.parametrize("preset", ["tiny", "small", "base"])
@pytest.mark.parametrize("img_size", [224, 384])
def test_key_count_formula(preset: str, img_size: int) -> None:
    config = get_config(preset, img_size=img_size)
    state = create_model(config, device="meta").state_dict()
    assert len(state) == 40 * config.layers + 11 + 5
    rows = (img_size // 16) ** 2 + 3
    assert state["beit3.encoder.embed_positions.A.weight"].shape[0] == rows
