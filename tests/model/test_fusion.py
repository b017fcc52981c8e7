"""Search fusion (model/fusion.py): the stacked vectors' cosine is the fused score, the heads
travel in the checkpoint, the eval CLI ranks with the search vectors, broken files are refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file
from toy_data import karpathy_dataset

from geomelt.cli import main
from geomelt.model import CheckpointError, create_model, get_config, load
from geomelt.model.config import VisionConfig
from geomelt.model.fusion import FusionHeads, FusionSpec, SentenceEncoder, attach_fusion
from geomelt.model.stem import EfficientNetLite0Stem
from geomelt.model.train import export

SPEC = FusionSpec(caption_weight=0.7, heads_weight=2.5)


@pytest.fixture(scope="module")
def fused_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny hybrid model (stem tuned from block 13) with random fusion heads attached."""
    folder = tmp_path_factory.mktemp("fusion")
    config = get_config("tiny").replace(
        vision=VisionConfig(
            img_size=64, patch_size=32, stem="efficientnet-lite0", stem_tune_from=13
        ),
        tie_word_embeddings=True,
    )
    plain = folder / "plain.safetensors"
    export(create_model(config, seed=0), plain)
    torch.manual_seed(1)
    heads = FusionHeads(SPEC)
    attach_fusion(plain, folder / "fused.safetensors", heads, SPEC)
    return folder / "fused.safetensors"


def test_fused_cosine_is_the_weighted_sum_of_the_three_scores(fused_file: Path) -> None:
    fused = load(fused_file)
    plain = load(fused_file.with_name("plain.safetensors"))
    assert plain.fusion is None
    assert plain.search_dim == plain.embedding_dim
    assert fused.fusion is not None
    assert fused.search_dim == fused.embedding_dim + 384 + 256
    images = torch.randint(0, 255, (3, 80, 80, 3), dtype=torch.uint8)
    captions = ["a red square", "boats in a harbour", "a red square"]
    queries = ["a red area", "ships in a harbor"]
    image_vectors = fused.search_vectors(images, captions)
    query_vectors = fused.encode_queries(queries)
    assert image_vectors.shape == (3, fused.search_dim)
    torch.testing.assert_close(image_vectors.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(query_vectors.norm(dim=1), torch.ones(2))
    # Independently: GeoMELT's cosine, MiniLM on the own captions, and the heads on the pooled
    # map of a whole ImageNet trunk (the fused model finishes its frozen prefix with ImageNet
    # blocks instead: the two must agree).
    geomelt = plain.encode_images(images) @ plain.encode_texts(queries).T
    sentences = SentenceEncoder()
    caption_scores = sentences.encode(captions) @ sentences.encode(queries).T
    trunk = EfficientNetLite0Stem(None)
    trunk.load_pretrained()
    pooled = trunk(fused.pixels(images)).mean(dim=(2, 3))
    heads = fused.fusion.heads
    head_scores = heads.image(pooled) @ heads.text(sentences.encode(queries)).T
    expected = geomelt + 0.7 * caption_scores + 2.5 * head_scores
    torch.testing.assert_close(
        image_vectors @ query_vectors.T, expected / (1 + 0.7 + 2.5), atol=2e-4, rtol=0
    )
    # Without fusion the search vectors are the plain embeddings and captions do not matter.
    torch.testing.assert_close(
        plain.search_vectors(images, ["x", "y", "z"]), plain.encode_images(images)
    )


def test_heads_without_their_weights_are_refused(fused_file: Path, tmp_path: Path) -> None:
    with safe_open(str(fused_file), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    extra = json.loads(metadata["extra"])
    del extra["fusion"]
    metadata["extra"] = json.dumps(extra)
    broken = tmp_path / "broken.safetensors"
    save_file(tensors, str(broken), metadata=metadata)
    from geomelt.model.checkpoint import file_sha256

    broken.with_name(broken.name + ".sha256").write_text(file_sha256(broken) + "\n")
    with pytest.raises(CheckpointError, match=r"broken\.safetensors.*fusion_heads\.py"):
        load(broken)


def test_eval_cli_reports_mr_with_and_without_fusion(fused_file: Path, tmp_path: Path) -> None:
    data = karpathy_dataset(tmp_path / "toy")
    out = tmp_path / "eval.json"
    args = ["model", "eval", "--model", str(fused_file), "--data", str(data), "--no-captioning"]
    result = CliRunner().invoke(main, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["ranking"].startswith("fused: GeoMELT cosine + 0.7")
    assert {"mR", "TR@1", "IR@10"} <= set(report["retrieval"])
    assert {"mR", "TR@1", "IR@10"} <= set(report["retrieval_without_fusion"])
    assert "captioning" not in report
    assert f"without fusion: {report['retrieval_without_fusion']['mR']}" in result.output
    assert not math.isnan(report["retrieval"]["mR"])
