"""Same-sample masks for the MOC/MOM negatives of multi-sample training."""

from __future__ import annotations

import torch


def negatives_mask(sample: torch.Tensor | None, negatives: str) -> torch.Tensor | None:
    """Pairs a cell may be contrasted with: all (None) or, for ``within_sample``, cells of
    its own sample; a cell alone of its sample in the batch keeps every cell as negative."""
    if negatives == "any" or sample is None:
        return None
    same = sample.unsqueeze(0) == sample.unsqueeze(1)
    alone = same.sum(dim=1) < 2
    return same | alone.unsqueeze(0) | alone.unsqueeze(1)


def restrict(similarity: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``similarity`` with disallowed pairs at -inf (never drawn, no probability mass)."""
    if mask is None:
        return similarity
    return similarity.masked_fill(~mask, float("-inf"))
