"""Dynamic loss balancing for the two tasks (spec §3.4); state lives outside the model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .errors import ConfigError

__all__ = ["DWABalancer", "StaticBalancer", "UncertaintyBalancer"]


class StaticBalancer:
    """Fixed weights w_k."""

    def __init__(self, weights: Sequence[float] = (1.0, 1.0)):
        self.weights = [float(w) for w in weights]

    def combine(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack([w * loss for w, loss in zip(self.weights, losses, strict=True)]).sum()

    def state(self) -> dict[str, Any]:
        return {"kind": "static", "weights": list(self.weights)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.weights = [float(w) for w in state["weights"]]


class DWABalancer:
    """Dynamic Weight Average: w_k(t) = K·softmax(L̄_k(t−1)/L̄_k(t−2) / T); w = 1 for t < 2."""

    def __init__(self, num_tasks: int = 2, *, period: int = 200, temperature: float = 2.0):
        if num_tasks < 1 or period < 1 or temperature <= 0:
            raise ConfigError(
                f"DWA num_tasks {num_tasks}, period {period}, temperature {temperature}: "
                "all must be positive"
            )
        self.num_tasks = num_tasks
        self.period = period
        self.temperature = temperature
        self.period_means: list[list[float]] = []
        self._sums = [0.0] * num_tasks
        self._count = 0

    def weights(self) -> list[float]:
        if len(self.period_means) < 2:
            return [1.0] * self.num_tasks
        ratios = [a / b for a, b in zip(self.period_means[-1], self.period_means[-2], strict=True)]
        exps = [math.exp(r / self.temperature) for r in ratios]
        total = sum(exps)
        return [self.num_tasks * e / total for e in exps]

    def observe(self, losses: Sequence[float]) -> None:
        """Record one step's task losses; closes a period every `period` steps."""
        for k, value in enumerate(losses):
            self._sums[k] += float(value)
        self._count += 1
        if self._count == self.period:
            self.period_means.append([s / self._count for s in self._sums])
            self._sums = [0.0] * self.num_tasks
            self._count = 0

    def combine(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        """Σ w_k L_k with constant weights; also records the detached losses."""
        weights = self.weights()
        self.observe([float(loss.detach()) for loss in losses])
        return torch.stack([w * loss for w, loss in zip(weights, losses, strict=True)]).sum()

    def state(self) -> dict[str, Any]:
        return {
            "kind": "dwa",
            "period": self.period,
            "temperature": self.temperature,
            "period_means": [list(m) for m in self.period_means],
            "sums": list(self._sums),
            "count": self._count,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.period = int(state["period"])
        self.temperature = float(state["temperature"])
        self.period_means = [[float(v) for v in m] for m in state["period_means"]]
        self._sums = [float(v) for v in state["sums"]]
        self._count = int(state["count"])


class UncertaintyBalancer(nn.Module):
    """Kendall et al.: L = Σ exp(−s_k)·L_k + ½ s_k with learned s_k = log σ_k² (init 0)."""

    def __init__(self, num_tasks: int = 2):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(num_tasks))

    def combine(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(list(losses))
        s = self.log_vars.to(stacked.device)
        return (torch.exp(-s) * stacked + 0.5 * s).sum()

    def state(self) -> dict[str, Any]:
        return {"kind": "uncertainty", "log_vars": self.log_vars.detach().cpu().tolist()}

    def load_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.log_vars.copy_(torch.tensor(state["log_vars"], dtype=self.log_vars.dtype))
