"""Intra-omics: multi-head self-attention over masked views, max-pooling, FFN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedViewAttention(nn.Module):
    """Fuse the T view embeddings of each cell into one local feature (per cell, T x T)."""

    def __init__(self, latent: int, n_heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(latent, n_heads, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(latent, 4 * latent), nn.ReLU(), nn.Linear(4 * latent, latent)
        )

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(views, views, views, need_weights=False)
        pooled = attended.amax(dim=1)
        return self.ffn(pooled)


def consistency_loss(local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
    """Scale-free MSE between the fused masked-view feature and the global feature.

    Both are standardised per cell; the global feature is the target (stop-gradient), so the
    views learn to predict it and the encoder cannot satisfy the loss by collapsing.
    """
    shape = local.shape[-1:]
    return F.mse_loss(F.layer_norm(local, shape), F.layer_norm(global_.detach(), shape))
