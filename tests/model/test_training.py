"""Task losses wired to the model, balancer state through a checkpoint, LoRA adapter files."""

from __future__ import annotations

from pathlib import Path

import torch

from geomelt.model import (
    LoraSettings,
    apply_lora,
    create_model,
    get_config,
    read_checkpoint,
    save_checkpoint,
)
from geomelt.model.balancing import DWABalancer
from geomelt.model.lora import load_lora
from geomelt.model.tokenizer import WordPieceTokenizer, encode_batch
from geomelt.model.training import task_losses

CAPTIONS = ["a plane is parked at the airport", "many green trees", "a river crosses a bridge"]


def test_losses_fall_when_fitting_a_tiny_batch(wordpiece: WordPieceTokenizer) -> None:
    model = create_model(get_config("tiny", img_size=32), seed=0).train()
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ids, padding = encode_batch(wordpiece, CAPTIONS, max_len=12)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    balancer = DWABalancer(period=2)
    gen = torch.Generator().manual_seed(0)
    history = []
    for step in range(6):
        losses = task_losses(model, pixels, ids, padding, wordpiece.spec, step=step, generator=gen)
        total = balancer.combine([losses.itc, losses.cap])
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append((float(losses.itc.detach()), float(losses.cap.detach())))
    assert all(torch.isfinite(torch.tensor(h)).all() for h in history)
    assert history[-1][0] < history[0][0]
    assert history[-1][1] < history[0][1]
    assert len(balancer.period_means) == 3


def test_balancer_state_travels_beside_the_weights(
    tmp_path: Path, wordpiece: WordPieceTokenizer
) -> None:
    balancer = DWABalancer(period=1)
    for losses in ([2.0, 1.0], [1.0, 1.0], [0.5, 0.9]):
        balancer.observe(losses)
    model = create_model("tiny", seed=0)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(
        model, path, tokenizer=wordpiece.spec, extra={"loss_balancer": balancer.state()}
    )
    ckpt = read_checkpoint(path)
    assert set(ckpt.state_dict) == set(model.state_dict())
    assert not any("balancer" in key for key in ckpt.state_dict)
    restored = DWABalancer()
    restored.load_state(ckpt.extra["loss_balancer"])
    assert restored.weights() == balancer.weights()
    assert restored.period_means == balancer.period_means


def test_lora_adapter_saved_apart_and_reloaded(tmp_path: Path) -> None:
    def fresh() -> torch.nn.Module:
        return create_model(get_config("tiny", img_size=32), seed=0)

    peft_model = apply_lora(fresh(), LoraSettings(dropout=0.0))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    pixels = torch.randn(1, 3, 32, 32)
    reloaded = load_lora(fresh(), tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(reloaded.image_states(pixels), peft_model.image_states(pixels))
        assert not torch.allclose(fresh().image_states(pixels), peft_model.image_states(pixels))
