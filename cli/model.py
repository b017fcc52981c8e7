"""`geomelt model ...`: inspect, train and evaluate GeoMELT models."""

from __future__ import annotations

import hashlib
import json

import click
from geomelt.model import ModelError, create_model, get_config, list_presets


@click.group("model")
def model_group() -> None:
    """Inspect, train and evaluate GeoMELT models."""


def _parse_heads(value: str) -> tuple[str, ...]:
    return tuple(h.strip() for h in value.split(",") if h.strip())


@model_group.command("info")
@click.option("--preset", required=True, type=click.Choice(list_presets()), help="Preset name.")
@click.option(
    "--heads",
    default="retrieval,caption",
    show_default=True,
    help="Comma-separated task heads to build (retrieval, caption).",
)
@click.option("--img-size", type=int, default=None, help="Image size in pixels (multiple of 16).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(preset: str, heads: str, img_size: int | None, as_json: bool) -> None:
    """Build PRESET (shapes only, on the meta device) and report its size and keys."""
    try:
        config = get_config(preset, img_size=img_size, task_heads=_parse_heads(heads))
        model = create_model(config, device="meta")
    except ModelError as exc:
        raise click.UsageError(str(exc)) from exc
    keys = sorted(model.state_dict())
    counts = config.parameter_counts()
    report = {
        "preset": preset,
        "parameters": model.parameter_count(),
        "parameters_by_part": counts,
        "state_dict_keys": len(keys),
        "state_dict_keys_sha256": hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest(),
        "embed_dim": config.embed_dim,
        "layers": config.layers,
        "heads": config.heads,
        "ffn_dim": config.ffn_dim,
        "img_size": config.vision.img_size,
        "vocab_size": config.text.vocab_size,
        "tokenizer": config.text.tokenizer,
        "task_heads": list(config.task_heads),
    }
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        click.echo(f"{key:24} {value}")
