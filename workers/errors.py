"""Errors of ingestion. Each message names the input, what is wrong with it and the fix."""

from __future__ import annotations


class IngestError(Exception):
    """Ingestion failed; the message names the source, item or asset and what to do."""


class SourceUnavailable(IngestError):
    """A STAC API or an asset could not be reached (HTTP error, timeout); retried with back-off."""


class ChipError(IngestError):
    """An item cannot be chipped (corrupt raster, no usable RGB assets, broken geometry).

    Not retried: the same input fails the same way. Fix the item or the source's --assets.
    """
