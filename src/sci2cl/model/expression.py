"""The joint's expression space: a modality's decoded expression, log-normalised, standardised
per feature and projected on its principal axes.

The axes are found by a randomised SVD (range finder with subspace iterations) in passes over
the cells, so nothing of size cells x features is ever held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

TARGET_SUM = 1e4  # counts per cell of the log-normalisation (scanpy's normalize_total)
MAX_Z = 10.0  # standardised values are clipped here, as sc.pp.scale(max_value=10) does
OVERSAMPLE = 10  # extra directions of the randomised range finder
POWER_ITERATIONS = 2
FIT_CELLS = 20_000  # the axes are fitted on at most this many cells, evenly spread
CHUNK_VALUES = 1 << 22  # cells x features values decoded at a time


def log_normalised(log_rate: torch.Tensor) -> torch.Tensor:
    """``log1p`` of a cell's expected counts per ``TARGET_SUM`` (``exp(log_rate)`` is the
    decoder's expected share of the cell's counts)."""
    return torch.log1p(torch.exp(log_rate.float()) * TARGET_SUM)


def standardised(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Centred, divided by each feature's SD, clipped at ``MAX_Z``."""
    return ((x - mean) * scale).clamp(-MAX_Z, MAX_Z)


@torch.no_grad()
def principal_axes(
    chunks: Callable[[], Iterable[torch.Tensor]], n_components: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Feature means, 1 / SDs (0 for constant features) and the top ``n_components`` principal
    axes (features x components; zero columns beyond the data's rank) of the standardised
    rows that ``chunks()`` yields, the same rows in the same order on every call."""
    n, total, squares = 0, 0.0, 0.0
    for x in chunks():
        x = x.double()
        n, total, squares = n + x.shape[0], total + x.sum(0), squares + (x * x).sum(0)
    mean = total / n
    sd = (squares / n - mean * mean).clamp_min(0).sqrt()
    scale = torch.where(sd > 1e-6 * sd.max().clamp_min(1e-30), 1.0 / sd, torch.zeros_like(sd))
    mean, scale = mean.float(), scale.float()

    def rows() -> Iterable[torch.Tensor]:
        return (standardised(x, mean, scale) for x in chunks())

    def times(basis: torch.Tensor) -> torch.Tensor:  # X @ basis, cells x width
        return torch.cat([x @ basis for x in rows()])

    def transposed_times(q: torch.Tensor) -> torch.Tensor:  # X.T @ q, features x width
        out, start = 0.0, 0
        for x in rows():
            out, start = out + x.T @ q[start : start + x.shape[0]], start + x.shape[0]
        return out

    d = mean.shape[0]
    width = min(n_components + OVERSAMPLE, d, n)
    generator = torch.Generator().manual_seed(seed)
    basis = torch.randn(d, width, generator=generator).to(mean.device)
    q = torch.linalg.qr(times(basis)).Q
    for _ in range(POWER_ITERATIONS):
        q = torch.linalg.qr(times(torch.linalg.qr(transposed_times(q)).Q)).Q
    _, _, vt = torch.linalg.svd(transposed_times(q).T, full_matrices=False)
    axes = torch.zeros(d, n_components, device=mean.device)
    k = min(n_components, vt.shape[0])
    axes[:, :k] = vt[:k].T
    return mean, scale, axes
