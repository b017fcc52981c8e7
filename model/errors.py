"""Errors raised by geomelt.model; every message names the offending input and the fix."""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "ModelError"]


class ModelError(Exception):
    """A GeoMELT model operation failed; the message says which input and how to fix it."""


class ConfigError(ModelError, ValueError):
    """A configuration, preset name or input shape is invalid; use a listed preset or value."""


class CheckpointError(ModelError):
    """A weight file cannot be loaded into this model; check the file, its config and tokenizer."""
