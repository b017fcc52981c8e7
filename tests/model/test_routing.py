"""T3 routing, T4 split position, T14 position rows (spec §2.2-2.3)."""

from __future__ import annotations

import torch

from geomelt.model import GeoMeltModel


def grads_after(model: GeoMeltModel, run) -> dict[str, torch.Tensor | None]:
    model.zero_grad(set_to_none=True)
    out = run()
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    return {name: p.grad for name, p in model.named_parameters()}


def touched(grad: torch.Tensor | None) -> bool:
    return grad is not None and bool(grad.abs().sum() > 0)


def hook_b_modules(model: GeoMeltModel) -> list[str]:
    fired: list[str] = []
    for name, module in model.named_modules():
        if name.endswith(".B"):
            module.register_forward_hook(lambda m, i, o, name=name: fired.append(name))
    return fired


def test_image_only_uses_only_vision_experts(tiny64: GeoMeltModel) -> None:
    fired = hook_b_modules(tiny64)
    pixels = torch.randn(2, 3, 64, 64)
    grads = grads_after(tiny64, lambda: tiny64.image_states(pixels))
    a_params = [n for n in grads if ".A." in n]
    assert len(a_params) == 20 * tiny64.geomelt_config.layers + 3
    assert all(touched(grads[n]) for n in a_params)
    assert not any(touched(g) for n, g in grads.items() if ".B." in n)
    assert not touched(grads["beit3.text_embed.weight"])
    assert not touched(grads["beit3.vision_embed.mask_token"])
    for name in ("proj.weight", "proj.bias", "cls_token"):
        assert touched(grads[f"beit3.vision_embed.{name}"])
    assert fired == []


def test_text_only_uses_only_language_experts(tiny64: GeoMeltModel) -> None:
    fired_a: list[str] = []
    for name, module in tiny64.named_modules():
        if name.endswith(".A"):
            module.register_forward_hook(lambda m, i, o, name=name: fired_a.append(name))
    ids = torch.randint(999, 30522, (2, 9))
    grads = grads_after(tiny64, lambda: tiny64.text_states(ids))
    b_params = [n for n in grads if ".B." in n]
    assert len(b_params) == 20 * tiny64.geomelt_config.layers + 3
    assert all(touched(grads[n]) for n in b_params)
    assert not any(touched(g) for n, g in grads.items() if ".A." in n)
    assert not any(touched(g) for n, g in grads.items() if "vision_embed" in n)
    assert touched(grads["beit3.text_embed.weight"])
    assert fired_a == []


def test_fused_split_routes_first_n_plus_1_tokens_to_a(tiny64: GeoMeltModel) -> None:
    captured: dict[str, torch.Tensor] = {}
    ffn = tiny64.beit3.encoder.layers[1].ffn

    def keep(module, args, output) -> None:
        captured["input"], captured["split"], captured["output"] = args[0], args[1], output

    ffn.register_forward_hook(keep)
    pixels = torch.randn(2, 3, 64, 64)
    ids = torch.randint(999, 30522, (2, 6))
    with torch.no_grad():
        tiny64.fused_states(pixels, ids)
        n1 = tiny64.num_image_tokens
        x = captured["input"]
        reference = torch.cat([ffn.A(x[:, :n1]), ffn.B(x[:, n1:])], dim=1)
    assert captured["split"] == n1 == 17
    torch.testing.assert_close(captured["output"], reference, rtol=0, atol=0)
    assert not torch.allclose(ffn.B(x[:, :n1]), reference[:, :n1])


def perturbed(model: GeoMeltModel, table: str, rows: slice) -> GeoMeltModel:
    weight = getattr(model.beit3.encoder.embed_positions, table).weight
    with torch.no_grad():
        weight[rows] += 10.0
    return model


def test_position_rows_zero_and_one_are_never_read(tiny64: GeoMeltModel) -> None:
    pixels = torch.randn(2, 3, 64, 64)
    ids = torch.randint(999, 30522, (2, 6))
    with torch.no_grad():
        before = (
            tiny64.image_states(pixels),
            tiny64.text_states(ids),
            tiny64.fused_states(pixels, ids),
        )
        perturbed(perturbed(tiny64, "A", slice(0, 2)), "B", slice(0, 2))
        after = (
            tiny64.image_states(pixels),
            tiny64.text_states(ids),
            tiny64.fused_states(pixels, ids),
        )
    for b, a in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_position_row_two_is_first_token(tiny64: GeoMeltModel) -> None:
    pixels = torch.randn(1, 3, 64, 64)
    ids = torch.randint(999, 30522, (1, 5))
    n1 = tiny64.num_image_tokens
    with torch.no_grad():
        text_before = tiny64.text_states(ids)
        fused_before = tiny64.fused_states(pixels, ids)
        image_before = tiny64.image_states(pixels)
        # Rows a fused pass would read if text positions continued after the image.
        perturbed(tiny64, "B", slice(n1 + 2, n1 + 2 + 5))
        torch.testing.assert_close(tiny64.fused_states(pixels, ids), fused_before, rtol=0, atol=0)
        perturbed(tiny64, "B", slice(2, 3))
        assert not torch.allclose(tiny64.text_states(ids)[:, 0], text_before[:, 0])
        fused_after = tiny64.fused_states(pixels, ids)
        assert not torch.allclose(fused_after[:, n1], fused_before[:, n1])
        torch.testing.assert_close(fused_after[:, :n1], fused_before[:, :n1], rtol=0, atol=0)
        perturbed(tiny64, "A", slice(2, 3))
        image_after = tiny64.image_states(pixels)
    assert not torch.allclose(image_after[:, 0], image_before[:, 0])
