"""Training and evaluation data: Karpathy caption JSON, class-folder scene sets, sampling.

A record is one image with all its captions. Scene datasets (a folder of class subfolders)
become weak captions from prompt templates; their val part is split off per class with a
fixed seed and never trained on.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import ConfigError

__all__ = [
    "DIRECTIONAL_WORDS",
    "SCENE_TEMPLATES",
    "ImageRecord",
    "UniqueImageBatchSampler",
    "class_prompt_name",
    "has_directional_word",
    "images_root_for",
    "load_image",
    "load_karpathy",
    "load_scenes",
    "matching_pairs",
    "parse_data_spec",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
SCENE_TEMPLATES = (
    "an aerial image of {}.",
    "a satellite image of {}.",
    "a remote sensing image of {}.",
    "an overhead view of {}.",
    "there is {} in this aerial photo.",
)
# Flips/rotations would falsify captions that name a direction (spec §3.7 text guard).
DIRECTIONAL_WORDS = frozenset(
    ["left", "right", "top", "bottom", "upper", "lower", "north", "south", "east", "west"]
)
# Scene folder names whose plain reading is not a good prompt (see data/scenes/README.md).
CLASS_PROMPTS = {
    "resident": "a residential area",
    "field": "farmland",
    "river_lake": "a river or lake",
    "bare_land": "bare land",
    "center": "a city center",
    "industry": "an industrial area",
    "industrial": "an industrial area",
    "parking": "a parking lot",
    "parkinglot": "a parking lot",
    "grass": "grassland",
    "storage_tanks": "storage tanks",
    "storagetanks": "storage tanks",
    "railway_station": "a railway station",
    "dense_residential": "a dense residential area",
    "denseresidential": "a dense residential area",
    "medium_residential": "a medium residential area",
    "mediumresidential": "a medium residential area",
    "sparse_residential": "a sparse residential area",
    "sparseresidential": "a sparse residential area",
    "baseballdiamond": "a baseball diamond",
    "baseball_field": "a baseball field",
    "golfcourse": "a golf course",
    "mobilehomepark": "a mobile home park",
    "tenniscourt": "a tennis court",
}


@dataclass(frozen=True)
class ImageRecord:
    """One image and every caption of it; `weight` scales how often it is drawn.

    `class_captions`: the captions name only the class (weak scene captions), so any caption
    of the class describes any of its images equally well.
    """

    path: Path
    captions: tuple[str, ...]
    dataset: str
    label: str | None = None
    weight: float = 1.0
    class_captions: bool = False


def class_prompt_name(folder: str) -> str:
    """Folder name -> the noun phrase used in prompts ("storage_tanks" -> "storage tanks")."""
    if folder.lower() in CLASS_PROMPTS:
        return CLASS_PROMPTS[folder.lower()]
    return folder.replace("_", " ").replace("-", " ").lower()


def has_directional_word(caption: str) -> bool:
    return any(word in DIRECTIONAL_WORDS for word in re.findall(r"[a-z]+", caption.lower()))


def images_root_for(json_path: Path) -> Path:
    """`<json folder>/images` when it exists, else the JSON's folder."""
    folder = json_path.parent
    return folder / "images" if (folder / "images").is_dir() else folder


def load_karpathy(
    json_path: Path,
    splits: Sequence[str],
    *,
    images_root: Path | None = None,
    weight: float = 1.0,
) -> list[ImageRecord]:
    """Images of `splits` from a Karpathy-format JSON (`images[].filename/split/sentences`)."""
    try:
        data = json.loads(Path(json_path).read_text(encoding="utf-8"))
        entries = data["images"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{json_path}: not a readable Karpathy JSON ({exc}); it needs a top-level 'images' "
            "list with filename, split and sentences[].raw per image"
        ) from exc
    root = images_root or images_root_for(Path(json_path))
    name = str(data.get("dataset") or Path(json_path).stem)
    records = []
    for position, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("filename"), str)
            and isinstance(entry.get("sentences", []), list)
            and all(isinstance(s, dict) for s in entry.get("sentences", []))
        ):
            raise ConfigError(
                f"{json_path}: images[{position}] is {str(entry)[:80]!r}, not a Karpathy entry; "
                "each needs filename, split and sentences: [{raw: ...}, ...]"
            )
        if entry.get("split") not in splits:
            continue
        captions = tuple(
            str(s["raw"]).strip()
            for s in entry.get("sentences", [])
            if str(s.get("raw", "")).strip()
        )
        if not captions:
            continue
        folder = root / entry["filepath"] if entry.get("filepath") else root
        records.append(
            ImageRecord(folder / entry["filename"], captions, name, entry.get("class"), weight)
        )
    if not records:
        present = sorted({str(e.get("split")) for e in entries})
        raise ConfigError(
            f"{json_path}: no images with captions in split(s) {list(splits)}; "
            f"splits present: {', '.join(present)}"
        )
    missing = [r.path for r in records[:50] if not r.path.is_file()]
    if missing:
        raise ConfigError(
            f"{json_path}: image {missing[0]} does not exist; pass --images-root pointing at "
            "the folder that holds the files named in the JSON"
        )
    return records


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir())
    if not folders:
        raise ConfigError(f"{root}: no class subfolders; expected <root>/<class>/<image>.jpg")
    return folders


def load_scenes(
    root: Path,
    part: str,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    templates: Sequence[str] = SCENE_TEMPLATES,
    weight: float = 1.0,
) -> list[ImageRecord]:
    """A class-folder scene dataset; part "train", "val" (per-class split by seed) or "all"."""
    if part not in ("train", "val", "all"):
        raise ConfigError(f"scene part {part!r}: use train, val or all")
    records = []
    for folder in _class_folders(root):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        order = list(range(len(files)))
        random.Random(f"{seed}:{folder.name}").shuffle(order)  # noqa: S311 -- a split
        n_val = round(len(files) * val_fraction)
        chosen = {
            "val": order[:n_val],
            "train": order[n_val:],
            "all": order,
        }[part]
        noun = class_prompt_name(folder.name)
        captions = tuple(t.format(noun) for t in templates)
        for i in sorted(chosen):
            records.append(
                ImageRecord(
                    files[i], captions, Path(root).name, folder.name, weight, class_captions=True
                )
            )
    return records


def parse_data_spec(spec: str) -> tuple[str, Path, float]:
    """`[scenes:]PATH[@WEIGHT]` -> (kind, path, weight); kind is "karpathy" or "scenes"."""
    kind = "karpathy"
    if spec.startswith("scenes:"):
        kind, spec = "scenes", spec[len("scenes:") :]
    weight = 1.0
    if "@" in spec:
        spec, _, raw = spec.rpartition("@")
        try:
            weight = float(raw)
        except ValueError as exc:
            raise ConfigError(f"data weight {raw!r} in {spec}@{raw}: must be a number") from exc
    path = Path(spec)
    if not path.exists():
        raise ConfigError(f"data {path}: does not exist; pass a Karpathy JSON or scenes:DIR")
    return kind, path, weight


def load_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3), bicubic resize (the eval transform of spec §3.7)."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except OSError as exc:
        raise ConfigError(f"image {path}: cannot be read ({exc})") from exc
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(rgb)


class UniqueImageBatchSampler:
    """Batches of (record index, caption index); an image appears at most once per batch.

    Each epoch draws every record once (weights > 1 repeat a record in later batches of the
    epoch, never within one batch; weights < 1 subsample), with a random caption each time.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        batch_size: int,
        *,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 2:
            raise ConfigError(f"batch_size {batch_size}: contrastive batches need at least 2")
        self.records = records
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last

    def epoch(self, epoch: int) -> list[list[tuple[int, int]]]:
        rng = random.Random(self.seed * 100003 + epoch)  # noqa: S311 -- sampling
        draws: list[int] = []
        for i, record in enumerate(self.records):
            whole, frac = divmod(record.weight, 1.0)
            draws.extend([i] * (int(whole) + (rng.random() < frac)))
        rng.shuffle(draws)
        batches: list[list[tuple[int, int]]] = []
        deferred: list[int] = []  # repeats that would collide with the open batch
        current: list[tuple[int, int]] = []
        seen: set[int] = set()
        for i in draws:
            if i in seen:
                deferred.append(i)
                continue
            seen.add(i)
            current.append((i, rng.randrange(len(self.records[i].captions))))
            if len(current) == self.batch_size:
                batches.append(current)
                current, seen = [], set()
                waiting, deferred = deferred, []
                for j in waiting:
                    if j in seen:
                        deferred.append(j)
                    else:
                        seen.add(j)
                        current.append((j, rng.randrange(len(self.records[j].captions))))
        if current and not self.drop_last:
            batches.append(current)
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.epoch(0))


def matching_pairs(
    records: Sequence[ImageRecord], batch: Sequence[tuple[int, int]]
) -> torch.Tensor:
    """(B, B) bool: image i and caption j of a batch describe each other (diagonal included).

    Off the diagonal that holds for two images of one class under class-only captions, and for
    two images whose drawn captions read the same (UCM repeats many captions verbatim).
    """

    def key(index: int, caption: int) -> tuple[str, ...]:
        record = records[index]
        if record.class_captions:
            return ("class", record.dataset, str(record.label))
        return ("text", " ".join(record.captions[caption].lower().rstrip(" .").split()))

    keys = [key(i, c) for i, c in batch]
    return torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.bool)


def stack_images(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
