"""Stage-1/2 training loop (spec §3): ITC + masked captioning, dynamically balanced.

Inputs are either pixels (patch stem; augmented on the fly) or, for a frozen hybrid stem,
stem feature maps computed once and cached on disk (`feature_cache`), augmented by D4
transforms of the feature grid. Training state (model, optimiser, balancer, step) is saved
to `<out>/last.pt` every `checkpoint_every` steps and on exit, and resumed from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .balancing import DWABalancer, StaticBalancer, UncertaintyBalancer
from .checkpoint import save_checkpoint
from .data import (
    ImageRecord,
    UniqueImageBatchSampler,
    has_directional_word,
    load_image,
    matching_pairs,
    stack_images,
)
from .errors import ConfigError
from .factory import create_model, get_config, list_presets
from .image import d4_transform, preprocess_images
from .lora import LoraSettings, apply_lora, merge_lora
from .network import GeoMeltModel
from .tokenizer import TextTokenizer, encode_batch, load_tokenizer
from .training import CaptionTrainingSettings, task_losses_shared
from .warmstart import copy_language_to_vision, warm_start_from_minilm

__all__ = [
    "FeatureStore",
    "TrainSettings",
    "build_model",
    "interpolate",
    "train",
]

logger = logging.getLogger(__name__)

BALANCERS = ("dwa", "uncertainty", "static")
INITS = ("scratch", "minilm", "minilm+copy")
STATE_FILE = "last.pt"
METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class TrainSettings:
    """One training run. Defaults are the shipped CPU recipe (spec §3.6 GeoMELT joint)."""

    preset: str = "small-hybrid"
    img_size: int | None = None  # None: the preset's
    init: str = "minilm"
    epochs: float = 10.0
    max_steps: int | None = None
    batch_size: int = 64
    lr: float = 1e-4
    head_lr_scale: float = 5.0  # heads, proj, new vision parts learn faster than warm text
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    grad_clip: float = 3.0
    drop_path: float = 0.1
    text_max_len: int = 40
    balancing: str = "dwa"
    dwa_period: int = 200
    static_weights: tuple[float, float] = (1.0, 1.0)  # (itc, cap) for balancing="static"
    augment: bool = True
    # ITC targets: every matching pair in a batch is a positive (same scene class under class
    # captions, same caption text), not only the diagonal (data.matching_pairs).
    match_positives: bool = True
    # Weak class captions ("an aerial image of forest.") teach ITC the class names but, fed to
    # the captioner, make it answer with a template; by default only human captions train it.
    caption_class_captions: bool = False
    # bf16 autocast on CUDA, and on CPUs with native bf16 (AVX512-BF16/AMX: ~1.9x faster here).
    mixed_precision: bool = True
    # Hybrid stem: EfficientNet-Lite0 blocks from this index on (and its head conv) train with
    # the transformer, in fp32 at the base lr; None keeps the stem frozen (VisionConfig field).
    stem_tune_from: int | None = None
    lora: LoraSettings | None = None
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0
    num_threads: int | None = None
    caption: CaptionTrainingSettings = field(default_factory=CaptionTrainingSettings)

    def __post_init__(self) -> None:
        if self.balancing not in BALANCERS:
            raise ConfigError(f"balancing {self.balancing!r}: use one of {', '.join(BALANCERS)}")
        if self.init not in INITS:
            raise ConfigError(f"init {self.init!r}: use one of {', '.join(INITS)}")
        if self.batch_size < 2 or self.epochs <= 0:
            raise ConfigError(
                f"batch_size {self.batch_size} / epochs {self.epochs}: need >= 2 and > 0"
            )

    @classmethod
    def from_json(cls, path: Path) -> TrainSettings:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise TypeError(f"top level is a {type(raw).__name__}")
            if raw.get("lora"):
                raw["lora"] = LoraSettings(**raw["lora"])
            if raw.get("caption"):
                raw["caption"] = CaptionTrainingSettings(**raw["caption"])
            settings = cls(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"train config {path}: {exc}; it must be a JSON object of TrainSettings fields"
            ) from exc
        if settings.preset not in list_presets():
            raise ConfigError(
                f"train config {path}: unknown preset {settings.preset!r}; use one of "
                f"{', '.join(list_presets())}"
            )
        return settings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model(settings: TrainSettings) -> GeoMeltModel:
    """Preset + drop_path, initialised as `settings.init` says (spec §8.1)."""
    config = get_config(settings.preset, img_size=settings.img_size)
    config = config.replace(
        drop_path=settings.drop_path,
        vision=dataclasses.replace(config.vision, stem_tune_from=settings.stem_tune_from),
    )
    model = create_model(config, seed=settings.seed)
    if settings.init.startswith("minilm"):
        warm_start_from_minilm(model)
    if settings.init == "minilm+copy":
        copy_language_to_vision(model)
    return model


def with_stem_tuned_from(model: GeoMeltModel, tune_from: int | None) -> GeoMeltModel:
    """`model` with its stem's blocks `tune_from`.. trainable.

    For a stage that starts from a model trained with a frozen stem, or with fewer blocks tuned:
    blocks the model did not tune start from ImageNet weights, everything else is copied.
    """
    vision = model.geomelt_config.vision
    if tune_from is None or vision.stem_tune_from == tune_from:
        return model
    if vision.stem_tune_from is not None and tune_from > vision.stem_tune_from:
        # Freezing tuned blocks again would silently drop what they learned.
        raise ConfigError(
            f"the model's stem already tunes from block {vision.stem_tune_from}; set "
            f"stem_tune_from to {vision.stem_tune_from} or lower (or null) instead of {tune_from}"
        )
    config = model.geomelt_config.replace(
        vision=dataclasses.replace(vision, stem_tune_from=tune_from)
    )
    tuned = create_model(config)
    missing, unexpected = tuned.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(".stem." not in key for key in missing):
        raise ConfigError(f"cannot carry the model over to a tuned stem: {missing + unexpected}")
    tuned.tie_weights()
    return tuned


class FeatureStore:
    """Frozen-stem feature maps (C, g, g) per image, cached as fp16 files by path+size.

    C = 1280 for a frozen stem; with a tuned tail, the maps before its first block.
    """

    def __init__(self, model: GeoMeltModel, cache_dir: Path, *, batch_size: int = 32):
        stem = model.beit3.vision_embed.stem
        if stem is None:
            raise ConfigError(
                f"preset {model.geomelt_config.name!r} has no frozen stem; feature caching "
                "needs a hybrid preset such as 'small-hybrid'"
            )
        self.stem = stem
        self.img_size = model.geomelt_config.vision.img_size
        tune_from = stem.tune_from
        self.cache_dir = Path(cache_dir) / (
            f"s{self.img_size}" if tune_from is None else f"s{self.img_size}-b{tune_from}"
        )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.batch_size = batch_size

    def file_for(self, path: Path) -> Path:
        return self.cache_dir / (
            hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest() + ".pt"
        )

    @torch.no_grad()
    def load(self, paths: Sequence[Path]) -> torch.Tensor:
        """(N, C, g, g) float16 for `paths`, computing and caching what is missing."""
        missing = [p for p in dict.fromkeys(paths) if not self.file_for(p).is_file()]
        device = self.stem.stem_w.device
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            pixels = preprocess_images(
                stack_images([load_image(p, self.img_size) for p in chunk]),
                self.img_size,
                device=device,
            )
            features = self.stem.frozen_features(pixels).half().cpu()
            for p, f in zip(chunk, features, strict=True):
                torch.save(f.clone(), self.file_for(p))
            logger.info("cached stem features %d/%d", start + len(chunk), len(missing))
        return torch.stack([torch.load(self.file_for(p), weights_only=True) for p in paths])


def _param_groups(
    trainable: nn.Module,
    model: GeoMeltModel,
    settings: TrainSettings,
    extra: Sequence[nn.Parameter],
) -> list[dict[str, Any]]:
    """No decay for 1-D params, cls/positions/logit_scale; faster LR for non-warm-started parts.

    `trainable` is `model` or its LoRA wrapper (which holds the same parameter objects); the
    model names each parameter's role, so the groups do not depend on parameter names.
    """
    no_decay_ids = {id(p) for p in model.no_weight_decay_parameters()}
    # The tuned stem tail starts from ImageNet weights: base lr, like the MiniLM parts.
    pretrained = model.stem_parameters()
    if settings.init.startswith("minilm"):
        pretrained += model.language_parameters()
    pretrained_ids = {id(p) for p in pretrained}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for param in trainable.parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim < 2 or id(param) in no_decay_ids
        fast = id(param) not in pretrained_ids and settings.init != "scratch"
        groups.setdefault((no_decay, fast), []).append(param)
    result = [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else settings.weight_decay,
            "lr_scale": settings.head_lr_scale if fast else 1.0,
        }
        for (no_decay, fast), params in groups.items()
    ]
    if extra:
        result.append({"params": list(extra), "weight_decay": 0.0, "lr_scale": 1.0})
    return result


def _lr_at(step: int, total: int, settings: TrainSettings) -> float:
    warmup = max(1, int(total * settings.warmup_fraction))
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return settings.min_lr + 0.5 * (settings.lr - settings.min_lr) * (
        1 + math.cos(math.pi * progress)
    )


def _balancer(settings: TrainSettings) -> DWABalancer | UncertaintyBalancer | StaticBalancer:
    if settings.balancing == "dwa":
        return DWABalancer(2, period=settings.dwa_period)
    if settings.balancing == "uncertainty":
        return UncertaintyBalancer(2)
    return StaticBalancer(settings.static_weights)


def _balancer_weights(balancer: Any) -> dict[str, float]:
    if isinstance(balancer, DWABalancer):
        w = balancer.weights()
        return {"w_itc": w[0], "w_cap": w[1]}
    if isinstance(balancer, UncertaintyBalancer):
        s = balancer.log_vars.detach().cpu().tolist()
        return {"s_itc": s[0], "s_cap": s[1], "w_itc": math.exp(-s[0]), "w_cap": math.exp(-s[1])}
    return {"w_itc": balancer.weights[0], "w_cap": balancer.weights[1]}


class _Batch(NamedTuple):
    inputs: torch.Tensor  # pixels (B, 3, S, S) or frozen-stem features (B, C, g, g)
    ids: torch.Tensor
    padding: torch.Tensor
    positives: torch.Tensor | None  # (B, B) matching pairs for ITC
    caption_rows: torch.Tensor | None  # rows that train the captioner; None: all


class _Batcher:
    """Turns sampler batches into (image inputs, text ids, padding) with augmentation."""

    def __init__(
        self,
        records: Sequence[ImageRecord],
        tokenizer: TextTokenizer,
        model: GeoMeltModel,
        settings: TrainSettings,
        features: torch.Tensor | None,
    ):
        self.records = records
        self.tokenizer = tokenizer
        self.settings = settings
        self.features = features
        self.img_size = model.geomelt_config.vision.img_size

    def __call__(
        self, batch: list[tuple[int, int]], rng: random.Random, device: torch.device
    ) -> _Batch:
        texts = [self.records[i].captions[c] for i, c in batch]
        if self.features is not None:
            inputs = self.features[[i for i, _ in batch]].float()
        else:
            arrays = [load_image(self.records[i].path, self.img_size) for i, _ in batch]
            inputs = preprocess_images(stack_images(arrays), self.img_size)
            if self.settings.augment:
                inputs = torch.stack([_random_resized_crop(x, rng) for x in inputs])
        if self.settings.augment:
            # Text guard (spec §3.7): no flips/rotations when the caption names a direction.
            inputs = torch.stack(
                [
                    x if has_directional_word(t) else d4_transform(x, rng.randrange(8))
                    for x, t in zip(inputs, texts, strict=True)
                ]
            )
        ids, padding = encode_batch(self.tokenizer, texts, self.settings.text_max_len)
        positives = (
            matching_pairs(self.records, batch).to(device)
            if self.settings.match_positives
            else None
        )
        caption_rows = None
        human = [k for k, (i, _) in enumerate(batch) if not self.records[i].class_captions]
        # None when every row captions: an index of all rows would copy the KV cache for nothing.
        if not self.settings.caption_class_captions and len(human) < len(batch):
            caption_rows = torch.tensor(human, dtype=torch.long, device=device)
        return _Batch(
            inputs.to(device), ids.to(device), padding.to(device), positives, caption_rows
        )


def _has_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _random_resized_crop(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """RandomResizedCrop(scale 0.6–1, ratio 3/4–4/3) of one (3, S, S) image, bicubic."""
    size = x.size(-1)
    area = size * size * rng.uniform(0.6, 1.0)
    ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    w = min(size, round(math.sqrt(area * ratio)))
    h = min(size, round(math.sqrt(area / ratio)))
    top, left = rng.randint(0, size - h), rng.randint(0, size - w)
    crop = x[:, top : top + h, left : left + w].unsqueeze(0)
    return F.interpolate(crop, size=(size, size), mode="bicubic", align_corners=False)[0]


class _BatchStream:
    """The sampler's epochs as one stream of batches indexed by step.

    Epochs differ in length (fractional weights draw a record a random number of times), so a
    step is found by walking the epochs, not by divmod with the first epoch's length.
    """

    def __init__(self, sampler: UniqueImageBatchSampler):
        self.sampler = sampler
        self._rewind()

    def _rewind(self) -> None:
        self.epoch, self.first_step = 0, 0
        self.batches = self.sampler.epoch(0)

    def __getitem__(self, step: int) -> list[tuple[int, int]]:
        if step < self.first_step:
            self._rewind()
        while step >= self.first_step + len(self.batches):
            self.first_step += len(self.batches)
            self.epoch += 1
            self.batches = self.sampler.epoch(self.epoch)
        return self.batches[step - self.first_step]


def _steps_per_epoch(sampler: UniqueImageBatchSampler, count: int) -> int:
    steps = len(sampler.epoch(0))
    if steps == 0:
        raise ConfigError(
            f"{count} images make no full batch of {sampler.batch_size}; "
            "lower batch_size or add data"
        )
    return steps


def _resume(
    state_path: Path,
    trainable: nn.Module,
    model: GeoMeltModel,
    optimizer: torch.optim.Optimizer,
    balancer: Any,
    device: torch.device,
) -> tuple[int, Any]:
    """Load `last.pt` if present; returns (step, rng state) or (0, None)."""
    if not state_path.is_file():
        return 0, None
    state = torch.load(state_path, map_location=device, weights_only=False)
    trainable.load_state_dict(state["model"])
    model.tie_weights()
    optimizer.load_state_dict(state["optimizer"])
    if state["balancer"]["kind"] == balancer.state()["kind"]:
        balancer.load_state(state["balancer"])
    else:
        logger.info("balancer changed to %s; its state starts fresh", balancer.state()["kind"])
    logger.info("resumed from %s at step %d", state_path, int(state["step"]))
    return int(state["step"]), state["rng"]


def _save_state(path: Path, **state: Any) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(
    records: Sequence[ImageRecord],
    settings: TrainSettings,
    out_dir: Path,
    *,
    device: str | torch.device = "cpu",
    feature_cache: Path | None = None,
    init_checkpoint: GeoMeltModel | None = None,
    stop_after: int | None = None,
) -> GeoMeltModel:
    """Train on `records`; returns the model (LoRA merged). Resumes from `<out>/last.pt`.

    `stop_after` ends the run at that step with the learning-rate schedule still that of the
    whole run (so a state picked from the middle of a long run can be trained again alone).
    """
    if not records:
        raise ConfigError("train got no records; pass at least one --data source")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    torch.manual_seed(settings.seed)
    if init_checkpoint is not None:
        model = with_stem_tuned_from(init_checkpoint, settings.stem_tune_from)
    else:
        model = build_model(settings)
    model = model.to(device)
    tokenizer = load_tokenizer(model.geomelt_config.text.tokenizer)
    features = None
    if feature_cache is not None:
        features = FeatureStore(model, feature_cache).load([r.path for r in records])
    trainable: nn.Module = model
    if settings.lora is not None:
        trainable = apply_lora(model, settings.lora)
    balancer = _balancer(settings)
    extra = list(balancer.to(device).parameters()) if isinstance(balancer, nn.Module) else []
    optimizer = torch.optim.AdamW(
        _param_groups(trainable, model, settings, extra),
        lr=settings.lr,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    sampler = UniqueImageBatchSampler(records, settings.batch_size, seed=settings.seed)
    steps_per_epoch = _steps_per_epoch(sampler, len(records))
    total = settings.max_steps or max(1, int(settings.epochs * steps_per_epoch))
    state_path = out_dir / STATE_FILE
    step, rng_state = _resume(state_path, trainable, model, optimizer, balancer, device)
    end = total if stop_after is None else min(total, stop_after)
    rng = random.Random(settings.seed)  # noqa: S311 -- augmentation, not security
    rng.setstate(rng_state or rng.getstate())
    batcher = _Batcher(records, tokenizer, model, settings, features)
    stream = _BatchStream(sampler)
    autocast = settings.mixed_precision and _has_bf16(device)
    metrics_path = out_dir / METRICS_FILE
    (out_dir / "train_settings.json").write_text(
        json.dumps(settings.to_dict(), default=str, indent=1), encoding="utf-8"
    )

    def checkpoint() -> None:
        _save_state(
            state_path,
            model=trainable.state_dict(),
            optimizer=optimizer.state_dict(),
            balancer=balancer.state(),
            step=step,
            rng=rng.getstate(),
            settings=settings.to_dict(),
        )

    from tqdm import tqdm

    progress = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, mininterval=5)
    trainable.train()
    seen = 0
    started = time.perf_counter()
    try:
        while step < end:
            batch = stream[step]
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total, settings) * group["lr_scale"]
            b = batcher(batch, rng, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                losses = task_losses_shared(
                    model, b.inputs, b.ids, b.padding, tokenizer.spec, step=step,
                    settings=settings.caption, positives=b.positives, caption_rows=b.caption_rows,
                )  # fmt: skip
            weights = _balancer_weights(balancer)
            loss: torch.Tensor = balancer.combine([losses.itc.float(), losses.cap.float()])
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for g in optimizer.param_groups for p in g["params"]], settings.grad_clip
            )
            optimizer.step()
            step += 1
            seen += len(batch)
            record = {
                "step": step,
                "epoch": step / steps_per_epoch,
                "lr": optimizer.param_groups[0]["lr"],
                "loss": float(loss.detach()),
                "itc": float(losses.itc.detach()),
                "cap": float(losses.cap.detach()),
                "grad_norm": float(grad_norm),
                "logit_scale": float(model.retrieval_heads()[2].detach()),
                "samples_per_s": seen / (time.perf_counter() - started),
                "bf16": autocast,
                **weights,
            }
            if step % settings.log_every == 0 or step == end:
                with metrics_path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
            progress.update(1)
            progress.set_postfix(itc=f"{record['itc']:.3f}", cap=f"{record['cap']:.3f}")
            if step % settings.checkpoint_every == 0:
                checkpoint()
    finally:
        progress.close()
        checkpoint()
    trainable.eval()
    if settings.lora is not None:
        model = merge_lora(trainable)  # type: ignore[arg-type]
    return model.eval()


@torch.no_grad()
def interpolate(start: GeoMeltModel, end: GeoMeltModel, alpha: float) -> GeoMeltModel:
    """(1 − alpha)·start + alpha·end, weight by weight, into `end` (WiSE-FT, Wortsman et al.
    2022): a fine-tuned model averaged with the one it started from keeps much of the
    fine-tuning's gain and of the start's robustness. Both must share one architecture; stem
    blocks the start kept frozen count as still ImageNet's."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"interpolation alpha {alpha}: must lie in [0, 1]")
    start = with_stem_tuned_from(start, end.geomelt_config.vision.stem_tune_from)
    if start.geomelt_config != end.geomelt_config:
        raise ConfigError(
            f"cannot interpolate {start.geomelt_config.name!r} and {end.geomelt_config.name!r}: "
            "the two models must have the same configuration (one must be trained from the other)"
        )
    # named_parameters lists a tied tensor once; state_dict would blend it twice.
    first = dict(start.named_parameters()) | dict(start.named_buffers())
    for name, value in [*end.named_parameters(), *end.named_buffers()]:
        if value.is_floating_point():
            value.lerp_(first[name].to(value.dtype), 1.0 - alpha)
    return end.eval()


def export(
    model: GeoMeltModel,
    path: Path,
    *,
    dtype: torch.dtype | None = torch.float16,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write the shippable checkpoint (safetensors + .sha256); returns the sha256."""
    tokenizer = load_tokenizer(model.geomelt_config.text.tokenizer)
    return save_checkpoint(
        model.to("cpu"), Path(path), tokenizer=tokenizer.spec, extra=extra, dtype=dtype
    )
