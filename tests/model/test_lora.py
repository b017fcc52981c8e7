"""T9 LoRA per expert via peft: trainable set, exact init, merge (spec §3.5)."""

from __future__ import annotations

import re

import pytest
import torch

from geomelt.model import (
    GeoMeltModel,
    LoraSettings,
    apply_lora,
    create_model,
    get_config,
    merge_lora,
)
from geomelt.model.lora import lora_target_regex

LORA_PARAM = re.compile(r"\.lora_(A|B)\.default\.weight$")


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 32, 32, generator=gen), torch.randint(
        999, 30522, (2, 6), generator=gen
    )


def outputs(model: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    pixels, ids = inputs()
    pixels = pixels.to(next(model.parameters()).dtype)
    with torch.no_grad():
        return (model.image_states(pixels), model.text_states(ids), model.fused_states(pixels, ids))


def tiny64(dtype: torch.dtype = torch.float32) -> GeoMeltModel:
    return create_model(get_config("tiny", img_size=32), seed=0, dtype=dtype)


def bare(experts: str = "both") -> LoraSettings:
    return LoraSettings(dropout=0.0, experts=experts, train_heads=False, train_layernorms=False)


def train_steps(peft_model: torch.nn.Module, steps: int = 2) -> None:
    opt = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
    pixels, ids = inputs()
    pixels = pixels.to(next(peft_model.parameters()).dtype)
    for _ in range(steps):
        opt.zero_grad()
        loss = (
            peft_model.fused_states(pixels, ids).pow(2).mean()
            + peft_model.image_states(pixels).mean()
        )
        loss.backward()
        opt.step()


def test_trainable_parameters_are_lora_matrices() -> None:
    peft_model = apply_lora(tiny64(), bare())
    trainable = {n: p.numel() for n, p in peft_model.named_parameters() if p.requires_grad}
    assert all(LORA_PARAM.search(n) for n in trainable)
    assert len(trainable) == 2 * 4 * 2 * 4  # (A, B) x 4 projections x 2 experts x 4 layers
    assert sum(trainable.values()) == 98_304


def test_heads_and_layernorms_stay_trainable_when_asked() -> None:
    peft_model = apply_lora(tiny64(), LoraSettings(dropout=0.0))
    extra = {
        n for n, p in peft_model.named_parameters() if p.requires_grad and not LORA_PARAM.search(n)
    }
    heads = {
        "vision_head.weight",
        "language_head.weight",
        "logit_scale",
        "mlm_head.weight",
        "mlm_head.bias",
    }
    assert {n.removeprefix("base_model.model.") for n in extra} >= heads
    assert all(n.endswith(("weight", "bias", "logit_scale")) for n in extra)
    assert not any("proj.base_layer" in n or ".fc1." in n for n in extra)


@pytest.mark.slow
def test_base_lora_parameter_count() -> None:
    peft_model = apply_lora(create_model("base"), bare())
    assert sum(p.numel() for p in peft_model.parameters() if p.requires_grad) == 1_179_648


def test_init_is_exact_and_step_changes_only_trainables() -> None:
    model = tiny64()
    before_out = outputs(model)
    peft_model = apply_lora(model, bare())
    for a, b in zip(outputs(peft_model), before_out, strict=True):
        assert torch.equal(a, b)
    frozen = {
        n: p.detach().clone() for n, p in peft_model.named_parameters() if not p.requires_grad
    }
    lora = {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    train_steps(peft_model)
    params = dict(peft_model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())
    assert any(not torch.equal(params[n], v) for n, v in lora.items() if ".lora_B." in n)


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_merge_restores_keys_and_outputs(dtype: torch.dtype, atol: float) -> None:
    reference_keys = set(tiny64().state_dict())
    peft_model = apply_lora(tiny64(dtype), bare())
    train_steps(peft_model)
    adapted = outputs(peft_model)
    merged = merge_lora(peft_model)
    assert isinstance(merged, GeoMeltModel)
    assert set(merged.state_dict()) == reference_keys
    for a, b in zip(outputs(merged), adapted, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=atol)


def test_vision_only_lora_leaves_text_outputs() -> None:
    model = tiny64()
    _, ids = inputs()
    with torch.no_grad():
        text_before = model.text_states(ids)
    peft_model = apply_lora(model, bare("vision"))
    assert all(".A.lora_" in n for n, p in peft_model.named_parameters() if p.requires_grad)
    train_steps(peft_model)
    with torch.no_grad():
        assert torch.equal(peft_model.text_states(ids), text_before)


def test_target_regex_variants() -> None:
    assert re.fullmatch(lora_target_regex(bare()), "beit3.encoder.layers.0.self_attn.q_proj.B")
    assert not re.fullmatch(lora_target_regex(bare("language")), "x.self_attn.q_proj.A")
    ffn = lora_target_regex(LoraSettings(include_ffn=True))
    assert re.fullmatch(ffn, "beit3.encoder.layers.3.ffn.A.fc2")
    assert not re.fullmatch(ffn, "beit3.encoder.layers.3.ffn.A.ffn_layernorm")
