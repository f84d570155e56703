"""An exponential moving average of the weights (Polyak averaging), which the trainer
validates, selects and saves in place of the last step's weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@torch.no_grad()
def update_average(
    average: list[torch.Tensor] | None, module: torch.nn.Module, decay: float
) -> list[torch.Tensor]:
    """``average ← decay · average + (1 − decay) · weights``; starts as a copy of the weights."""
    weights = [p.detach() for p in module.parameters()]
    if average is None:
        return [w.clone() for w in weights]
    torch._foreach_mul_(average, decay)
    torch._foreach_add_(average, weights, alpha=1.0 - decay)
    return average


@contextmanager
def averaged_weights(module: torch.nn.Module, average: list[torch.Tensor] | None) -> Iterator[None]:
    """Within the block the module holds ``average`` (if any); its own weights come back after,
    even on error."""
    if average is None:
        yield
        return
    params = list(module.parameters())
    with torch.no_grad():
        live = [p.detach().clone() for p in params]
        for p, a in zip(params, average, strict=True):
            p.copy_(a)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, w in zip(params, live, strict=True):
                p.copy_(w)
