"""Per-cell reliability of each modality's latent, from how far masked views move it.

Masking entries with probability ``q`` thins a cell's counts to a fraction ``p = 1 - q``. If
the latent's sampling noise has variance ``sigma^2 / n`` at ``n`` counts, a view differs from
the full latent by ``sigma^2 / n * (1/p - 1)``. With the between-cell signal variance ``S`` of
the latent, the cell's reliability is ``S / (S + sigma^2 / n) = n / (n + h)``, ``h = sigma^2 / S``:
a half-count per modality, learnt from the data instead of fixed.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def half_count(
    z: torch.Tensor, views: torch.Tensor, library: torch.Tensor, mask_rate: float
) -> torch.Tensor:
    """Counts at which the latent ``z`` (B, e) is half signal, half sampling noise, estimated
    from its masked ``views`` (B, T, e) and the cells' ``library`` sizes (B,)."""
    z, views, library = z.float(), views.float(), library.float().clamp_min(1.0)
    keep = 1.0 - mask_rate
    view_noise = (views - z.unsqueeze(1)).pow(2).mean(dim=(1, 2))  # per cell, per dimension
    sigma2 = (view_noise * library / (1.0 / keep - 1.0)).median()
    total = z.var(dim=0).mean()
    signal = (total - (sigma2 / library).mean()).clamp_min(0.05 * total)
    return sigma2 / signal


def reliability(library: torch.Tensor, half_count: torch.Tensor) -> torch.Tensor:
    """``n / (n + h)`` per cell and modality (broadcasts)."""
    return library / (library + half_count)


def scale_gradient(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``scale`` (B,) per row."""
    scale = scale.unsqueeze(-1).to(x.dtype)
    return x.detach() + scale * (x - x.detach())
