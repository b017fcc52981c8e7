"""`geomelt model ...`: inspect, train and evaluate GeoMELT models."""

from __future__ import annotations

import click


@click.group("model")
def model_group() -> None:
    """Inspect, train and evaluate GeoMELT models."""
