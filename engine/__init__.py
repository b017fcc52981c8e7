"""The Litestar STAC API with natural-language and example-based search."""
