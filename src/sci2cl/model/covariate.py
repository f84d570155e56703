"""The sample (batch) covariate: one-hot codes and same-sample masks for negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NEGATIVES = ("any", "within_sample")


def one_hot(sample: torch.Tensor | None, n_samples: int, like: torch.Tensor) -> torch.Tensor | None:
    """(B, n_samples) one-hot of the sample codes in ``like``'s dtype; None without samples."""
    if sample is None or n_samples < 2:
        return None
    return F.one_hot(sample, n_samples).to(like.dtype)


def same_sample(sample: torch.Tensor | None) -> torch.Tensor | None:
    """(B, B) True where two cells of the batch come from the same sample."""
    if sample is None:
        return None
    return sample.unsqueeze(0) == sample.unsqueeze(1)


def negatives_mask(sample: torch.Tensor | None, negatives: str) -> torch.Tensor | None:
    """Pairs a cell may be contrasted with: all (None) or, for ``within_sample``, cells of
    its own sample; a cell alone of its sample in the batch keeps every cell as negative."""
    if negatives == "any" or sample is None:
        return None
    same = same_sample(sample)
    alone = same.sum(dim=1) < 2
    return same | alone.unsqueeze(0) | alone.unsqueeze(1)


def restrict(similarity: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``similarity`` with disallowed pairs at -inf (never drawn, no probability mass)."""
    if mask is None:
        return similarity
    return similarity.masked_fill(~mask, float("-inf"))
