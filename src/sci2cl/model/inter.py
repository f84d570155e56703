"""Inter-omics: per-cell token cross-attention, contrastive (MOC) and matching (MOM) losses."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TokenCrossAttention(nn.Module):
    """Cross-attention between the token sets of ONE cell's two modalities.

    Each latent is projected into ``n_tokens`` tokens; r->a tokens attend to the ATAC tokens
    and a->r tokens to the RNA tokens with learned W^Q, W^K, W^V, W^O. The attended tokens are
    pooled and added back to the latent through a zero-initialised projection, so each stream
    starts as its own modality's latent and learns what to take from the other. Nothing
    crosses cells, so a cell's output does not depend on its batch companions.
    """

    def __init__(self, latent: int, n_tokens: int, n_heads: int) -> None:
        super().__init__()
        self.n_tokens = n_tokens
        self.to_tokens = nn.ModuleDict(
            {m: nn.Linear(latent, n_tokens * latent) for m in ("rna", "atac")}
        )
        self.position = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(n_tokens, latent)) for m in ("rna", "atac")}
        )
        self.attend = nn.ModuleDict(
            {m: nn.MultiheadAttention(latent, n_heads, batch_first=True) for m in ("rna", "atac")}
        )
        self.norm = nn.ModuleDict({m: nn.LayerNorm(latent) for m in ("rna", "atac")})
        self.back = nn.ModuleDict({m: nn.Linear(latent, latent) for m in ("rna", "atac")})
        for layer in self.back.values():
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # 1 = add what each stream takes from the other; 0 = streams are the latents (set by
        # the trainer's fusion check when matching does not generalise to held-out cells)
        self.register_buffer("residual_gate", torch.tensor(1.0))

    def _tokens(self, modality: str, z: torch.Tensor) -> torch.Tensor:
        tokens = self.to_tokens[modality](z).view(z.shape[0], self.n_tokens, -1)
        return tokens + self.position[modality]

    def forward(self, z_rna: torch.Tensor, z_atac: torch.Tensor) -> dict[str, torch.Tensor]:
        z = {"rna": z_rna, "atac": z_atac}
        tok = {m: self._tokens(m, z[m]) for m in z}
        out = {}
        for query, key in (("rna", "atac"), ("atac", "rna")):
            attended, _ = self.attend[query](tok[query], tok[key], tok[key], need_weights=False)
            pooled = self.norm[query](tok[query] + attended).mean(dim=1)
            out[query] = z[query] + self.residual_gate * self.back[query](pooled)
        return {"rna_to_atac": out["rna"], "atac_to_rna": out["atac"]}


class PairFusion(nn.Module):
    """Joint embedding Z = [z_r->a, z_a->r] (the two cross-attended streams); MOM head on Z."""

    def __init__(self, latent: int, n_tokens: int, n_heads: int) -> None:
        super().__init__()
        self.cross = TokenCrossAttention(latent, n_tokens, n_heads)
        self.match_head = nn.Sequential(
            nn.Linear(2 * latent + 2, latent), nn.ReLU(), nn.Linear(latent, 2)
        )

    def forward(self, z_rna: torch.Tensor, z_atac: torch.Tensor) -> torch.Tensor:
        streams = self.cross(z_rna, z_atac)
        return torch.cat([streams["rna_to_atac"], streams["atac_to_rna"]], dim=-1)

    def match_logits(
        self, z_rna: torch.Tensor, z_atac: torch.Tensor, depth: torch.Tensor
    ) -> torch.Tensor:
        """Pair / not-pair logits; ``depth`` (n, 2) gives the head both cells' log depths, so
        Z need not encode sequencing depth to tell pairs apart."""
        return self.match_head(torch.cat([self(z_rna, z_atac), depth], dim=-1))


MATCHING_CHANCE = math.log(2.0)
"""MOM loss of a classifier that cannot tell pairs from negatives (constant p = 1/2): with
negatives weighted 1/2 against 2 negatives per pair, both classes weigh alike, so ln 2."""


def info_nce(
    a: torch.Tensor, b: torch.Tensor, temperature: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP-style): row i of ``a`` pairs with row i of ``b``; ``mask``
    (B, B, symmetric, True on the diagonal) limits the negatives to its True pairs."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def hard_negatives(similarity: torch.Tensor) -> torch.Tensor:
    """For each row, one column index != row, drawn with probability softmax(similarity).

    Similar-but-unpaired cells are likelier negatives (ALBEF-style); labels are never used.
    """
    n = similarity.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=similarity.device)
    weights = torch.softmax(similarity.float().masked_fill(eye, float("-inf")), dim=-1)
    return torch.multinomial(weights, 1).squeeze(-1)


def matching_loss(
    fusion: PairFusion,
    z_rna: torch.Tensor,
    z_atac: torch.Tensor,
    depth: torch.Tensor,
    similarity: torch.Tensor,
) -> torch.Tensor:
    """MOM: classify true pairs vs hard-negative pairs in both directions (logits into CE).

    ``depth`` (n, 2) holds each cell's centred log library size of RNA and ATAC.
    """
    n = z_rna.shape[0]
    neg_atac = hard_negatives(similarity)  # for each RNA cell, an ATAC partner
    neg_rna = hard_negatives(similarity.T)  # for each ATAC cell, an RNA partner
    rna_rows = torch.cat([torch.arange(n, device=z_rna.device)] * 2 + [neg_rna])
    atac_rows = torch.cat(
        [torch.arange(n, device=z_rna.device), neg_atac, torch.arange(n, device=z_rna.device)]
    )
    rna, atac = z_rna[rna_rows], z_atac[atac_rows]
    pair_depth = torch.stack([depth[rna_rows, 0], depth[atac_rows, 1]], dim=-1)
    target = torch.cat([torch.ones(n, dtype=torch.long), torch.zeros(2 * n, dtype=torch.long)]).to(
        z_rna.device
    )
    weight = torch.tensor(
        [0.5, 1.0], device=z_rna.device
    )  # class 0 = 2n negatives, 1 = n positives
    return F.cross_entropy(fusion.match_logits(rna, atac, pair_depth), target, weight=weight)
