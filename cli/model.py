"""`geomelt model ...`: inspect, train and evaluate GeoMELT models."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import click

from geomelt.model import ModelError, create_model, get_config, list_presets, load
from geomelt.model.data import ImageRecord, load_karpathy, load_scenes, parse_data_spec
from geomelt.model.evaluate import (
    caption_images,
    caption_metrics,
    image_inputs_from_files,
    retrieval_eval,
    search_retrieval_eval,
    zero_shot_eval,
)
from geomelt.model.train import TrainSettings, export, interpolate, train

from .errors import InputProblem


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
        raise InputProblem(str(exc)) from exc
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


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def _records(data: tuple[str, ...], splits: tuple[str, ...], scene_part: str) -> list[ImageRecord]:
    records = []
    for spec in data:
        kind, path, weight = parse_data_spec(spec)
        if kind == "scenes":
            records += load_scenes(path, scene_part, weight=weight)
        else:
            records += load_karpathy(path, splits, weight=weight)
    return records


@model_group.command("train")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON of TrainSettings fields (preset, init, epochs, batch_size, lr, balancing, lora…).",
)
@click.option(
    "--data",
    multiple=True,
    required=True,
    help="Karpathy JSON (train split), or scenes:DIR (class folders, train part); "
    "append @WEIGHT to weight a source, e.g. ucm.json@2. Repeatable.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 …")
@click.option(
    "--feature-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache frozen-stem features here (hybrid presets): train on feature maps.",
)
@click.option("--init-from", type=str, default=None, help="Stage 2: start from this model.")
@click.option("--max-steps", type=int, default=None, help="Override the config's step count.")
@click.option(
    "--stop-after",
    type=click.IntRange(min=1),
    default=None,
    help="End at this step, keeping the whole run's learning-rate schedule.",
)
def train_command(
    config_path: Path | None,
    data: tuple[str, ...],
    out: Path,
    device: str,
    feature_cache: Path | None,
    init_from: str | None,
    max_steps: int | None,
    stop_after: int | None,
) -> None:
    """Train a GeoMELT model (stage 1; stage 2 with --init-from and a LoRA config).

    Resumes from OUT/last.pt; writes OUT/metrics.jsonl and OUT/model.safetensors.
    """
    _setup_logging()
    try:
        settings = TrainSettings.from_json(config_path) if config_path else TrainSettings()
        if max_steps is not None:
            settings = dataclasses.replace(settings, max_steps=max_steps)
        records = _records(data, ("train",), "train")
        init = load(init_from, device=device).model if init_from else None
        model = train(
            records, settings, out, device=device, feature_cache=feature_cache,
            init_checkpoint=init, stop_after=stop_after,
        )  # fmt: skip
        digest = export(model, out / "model.safetensors")
    except ModelError as exc:
        raise InputProblem(str(exc)) from exc
    click.echo(json.dumps({"model": str(out / "model.safetensors"), "sha256": digest}))


@model_group.command("interpolate")
@click.argument("start")
@click.argument("end")
@click.option(
    "--alpha",
    type=click.FloatRange(0.0, 1.0),
    required=True,
    help="Weight of END: the result is (1 - alpha) * START + alpha * END.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def interpolate_command(start: str, end: str, alpha: float, out: Path) -> None:
    """Average two models of one architecture weight by weight (WiSE-FT): START is usually the
    model a run began from, END the run's result. Writes OUT (fp16 safetensors + .sha256)."""
    _setup_logging()
    try:
        model = interpolate(load(start).model, load(end).model, alpha)
        digest = export(model, out)
    except ModelError as exc:
        raise InputProblem(str(exc)) from exc
    click.echo(json.dumps({"model": str(out), "sha256": digest, "alpha": alpha}))


def _write_json(result: dict[str, Any], path: Path | None) -> None:
    text = json.dumps(result, indent=1)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    click.echo(text)


@model_group.command("eval")
@click.option("--model", "model_name", required=True, help="Model name or .safetensors path.")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Karpathy-format dataset JSON.",
)
@click.option(
    "--images-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of the images; default <json folder>/images if it exists, else the folder.",
)
@click.option("--split", default="val", show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--device", default="cpu", show_default=True)
@click.option("--beams", default=3, show_default=True, type=int)
@click.option(
    "--no-captioning",
    is_flag=True,
    help="Retrieval only (a model with search fusion still captions: its ranking uses them).",
)
@click.option(
    "--allow-repeats",
    is_flag=True,
    help="Decode exactly as BEiT-3 (no guard against repeated words and bigrams).",
)
@click.option("--captions-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def eval_command(
    model_name: str,
    data_path: Path,
    images_root: Path | None,
    split: str,
    json_out: Path | None,
    device: str,
    beams: int,
    no_captioning: bool,
    allow_repeats: bool,
    captions_out: Path | None,
) -> None:
    """Retrieval (R@1/5/10, mR; spec §7.1) and captioning metrics (§7.2) on one split.

    `retrieval` ranks exactly as the search engine does: cosine between the vectors the workers
    store (GeoMelt.search_vectors, from each image and its own generated caption: beam 3, 32
    tokens, as the workers caption) and those the engine queries with (encode_queries). For a
    model with search fusion, `retrieval_without_fusion` is GeoMELT's embeddings alone.
    """
    _setup_logging()
    try:
        geomelt = load(model_name, device=device)
        records = load_karpathy(data_path, (split,), images_root=images_root)
        images = image_inputs_from_files(records, geomelt.config.vision.img_size, geomelt.device)
        started = time.perf_counter()
        plain = retrieval_eval(geomelt.model, geomelt.tokenizer, records, images)
        result: dict[str, Any] = {"model": geomelt.version, "data": str(data_path), "split": split}
        candidates = None
        if geomelt.fusion is not None or not no_captioning:
            candidates = caption_images(
                geomelt.model, geomelt.tokenizer, images, len(records), beams=beams,
                no_repeats=not allow_repeats,
            )  # fmt: skip
        if geomelt.fusion is not None and candidates is not None:
            spec = geomelt.fusion.spec
            result["ranking"] = (
                f"fused: GeoMELT cosine + {spec.caption_weight} x query-to-own-caption (MiniLM) "
                f"+ {spec.heads_weight} x linear heads on frozen features"
            )
            result["retrieval"] = search_retrieval_eval(geomelt, records, candidates)
            result["retrieval_without_fusion"] = plain
        else:
            result["ranking"] = "GeoMELT cosine"
            result["retrieval"] = plain
        if not no_captioning and candidates is not None:
            result["captioning"] = {
                **caption_metrics(candidates, [list(r.captions) for r in records]),
                "beams": beams,
                "length_penalty": 0.6,
                "no_repeats": not allow_repeats,
            }
            if captions_out is not None:
                rows = [
                    {"image": r.path.name, "caption": c, "references": list(r.captions)}
                    for r, c in zip(records, candidates, strict=True)
                ]
                captions_out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        result["wall_s"] = round(time.perf_counter() - started, 1)
    except ModelError as exc:
        raise InputProblem(str(exc)) from exc
    _write_json(result, json_out)
    fused = result["retrieval"]["mR"]
    alone = result.get("retrieval_without_fusion", result["retrieval"])["mR"]
    click.echo(f"mR as the search ranks: {fused} ({result['ranking']}); without fusion: {alone}",
               err=True)  # fmt: skip


@model_group.command("eval-zeroshot")
@click.option("--model", "model_name", required=True, help="Model name or .safetensors path.")
@click.option(
    "--images",
    "images_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of class subfolders.",
)
@click.option(
    "--part",
    type=click.Choice(["all", "val", "train"]),
    default="all",
    show_default=True,
    help="Evaluate all images, or the seeded per-class val/train part used in training.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--device", default="cpu", show_default=True)
def eval_zeroshot_command(
    model_name: str, images_dir: Path, part: str, json_out: Path | None, device: str
) -> None:
    """Top-1 zero-shot classification over a folder of class subfolders."""
    _setup_logging()
    try:
        geomelt = load(model_name, device=device)
        records = load_scenes(images_dir, part)
        images = image_inputs_from_files(records, geomelt.config.vision.img_size, geomelt.device)
        result = {
            "model": geomelt.version,
            "images_dir": str(images_dir),
            "part": part,
            **zero_shot_eval(geomelt.model, geomelt.tokenizer, records, images),
        }
    except ModelError as exc:
        raise InputProblem(str(exc)) from exc
    _write_json(result, json_out)
