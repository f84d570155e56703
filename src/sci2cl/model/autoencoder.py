"""Per-modality ZINB autoencoder: sparse-input encoder and DCA/scVI-style decoder heads."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sci2cl.data import ModalityBatch
from sci2cl.model.zinb import zinb_log_likelihood

MAX_LOG_RATE = 12.0


def _block(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, d_out), nn.LayerNorm(d_out), nn.ReLU(), nn.Dropout(dropout)
    )


class SparseLinear(nn.Module):
    """``values @ W + b`` for ragged sparse rows via ``embedding_bag`` (cost ~ non-zeros)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(max(d_in, 1))
        self.weight = nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(
        self, indices: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        out = F.embedding_bag(indices, self.weight, offsets, mode="sum", per_sample_weights=values)
        return out + self.bias


class Encoder(nn.Module):
    """Sparse first layer, LayerNorm/ReLU blocks, linear latent (batch-independent)."""

    def __init__(self, d_in: int, hidden: tuple[int, ...], latent: int, dropout: float) -> None:
        super().__init__()
        self.first = SparseLinear(d_in, hidden[0])
        self.first_post = nn.Sequential(nn.LayerNorm(hidden[0]), nn.ReLU(), nn.Dropout(dropout))
        self.body = nn.Sequential(
            *(_block(a, b, dropout) for a, b in zip(hidden[:-1], hidden[1:], strict=True))
        )
        self.out = nn.Linear(hidden[-1], latent)

    def forward(
        self, indices: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        h = self.first_post(self.first(indices, offsets, values))
        return self.out(self.body(h))

    def encode_batch(self, batch: ModalityBatch) -> torch.Tensor:
        return self(batch.indices, batch.offsets, batch.values)

    def encode_views(
        self,
        batch: ModalityBatch,
        n_views: int,
        mask_rate: float,
    ) -> torch.Tensor:
        """Encode ``n_views`` copies of each cell with entries masked per cell -> (B, T, e)."""
        nnz = batch.indices.shape[0]
        shift = torch.arange(n_views, device=batch.offsets.device).repeat_interleave(batch.size)
        offsets = batch.offsets.repeat(n_views) + shift * nnz
        values = masked_views(batch.values, n_views, mask_rate)
        z = self(batch.indices.repeat(n_views), offsets, values)
        return z.view(n_views, batch.size, -1).transpose(0, 1)


def masked_views(values: torch.Tensor, n_views: int, mask_rate: float) -> torch.Tensor:
    """``n_views`` stacked copies of the stored values with each entry independently set to
    zero (zero expression) with probability ``mask_rate``: a fresh mask per cell and view."""
    keep = torch.rand(n_views * values.shape[0], device=values.device)
    return values.repeat(n_views) * (keep >= mask_rate).to(values.dtype)


class ZINBDecoder(nn.Module):
    """Latent -> hidden -> per-feature log-rate and dropout-logit heads; gene-wise dispersion.

    ``mu = library * exp(log_rate)``. Heads read the last hidden layer (no d x d layers) and can
    be evaluated on a subset of features, which keeps wide peak sets cheap per step.

    With ``n_covariates`` > 1 the one-hot sample code is concatenated to the input of every
    hidden layer (scVI style), so the decoder, not the latent, explains per-sample technical
    effects. With ``n_samples`` > 1 a (samples x features) ``coverage`` buffer weights the
    likelihood: features a sample did not measure (0) are left out of its loss.
    """

    def __init__(
        self,
        latent: int,
        hidden: tuple[int, ...],
        d_out: int,
        dropout: float,
        mean_frequency: np.ndarray | None = None,
        n_covariates: int = 0,
        n_samples: int = 1,
        coverage: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.n_covariates = n_covariates if n_covariates > 1 else 0
        dims = (latent, *reversed(hidden))
        self.body = nn.Sequential(
            *(
                _block(a + self.n_covariates, b, dropout)
                for a, b in zip(dims[:-1], dims[1:], strict=True)
            )
        )
        if n_samples > 1:
            cover = np.ones((n_samples, d_out), np.float32) if coverage is None else coverage
            self.register_buffer("coverage", torch.as_tensor(cover, dtype=torch.float32))
        else:
            self.coverage = None
        self.rate = nn.Linear(dims[-1], d_out)
        self.dropout_logit = nn.Linear(dims[-1], d_out)
        self.log_theta = nn.Parameter(torch.zeros(d_out))
        if mean_frequency is not None:
            with torch.no_grad():
                freq = torch.as_tensor(mean_frequency, dtype=torch.float32)
                self.rate.bias.copy_(torch.log(freq.clamp_min(1e-7)))
                self.dropout_logit.bias.fill_(-2.0)

    def hidden(self, z: torch.Tensor, sample: torch.Tensor | None = None) -> torch.Tensor:
        """Last hidden layer; ``sample`` (B,) codes are injected when covariates are on."""
        if not self.n_covariates:
            return self.body(z)
        if sample is None:
            raise ValueError("this decoder is conditioned on the sample: pass sample codes")
        code = F.one_hot(sample, self.n_covariates).to(z.dtype)
        h = z
        for block in self.body:
            h = block(torch.cat([h, code], dim=-1))
        return h

    def forward(
        self,
        z: torch.Tensor,
        library: torch.Tensor,
        features: torch.Tensor | None = None,
        sample: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        h = self.hidden(z, sample)
        if features is None:
            log_rate, pi_logits, log_theta = self.rate(h), self.dropout_logit(h), self.log_theta
        else:
            log_rate = F.linear(h, self.rate.weight[features], self.rate.bias[features])
            pi_logits = F.linear(
                h, self.dropout_logit.weight[features], self.dropout_logit.bias[features]
            )
            log_theta = self.log_theta[features]
        mu = library.unsqueeze(-1) * torch.exp(log_rate.clamp(max=MAX_LOG_RATE))
        theta = F.softplus(log_theta) + 1e-4
        return {"mu": mu, "theta": theta.expand_as(mu), "pi_logits": pi_logits}

    def nll(
        self, z: torch.Tensor, batch: ModalityBatch, sample: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-cell ZINB NLL summed over features, estimated on the batch's target features
        (a uniform random subset of k of the d features, rescaled by d / k; all when
        ``features`` is None), in float32; features outside the cell's sample coverage do not
        count."""
        target = batch.target
        if target is None:
            raise ValueError("this batch has no reconstruction target (an encode-only batch)")
        counts, features = target.counts, target.features
        params = self(z.float(), batch.library, features, sample)
        mu, theta, pi_logits = (params[k].float() for k in ("mu", "theta", "pi_logits"))
        ll = zinb_log_likelihood(counts, mu, theta, pi_logits)
        if self.coverage is not None and sample is not None:
            cover = self.coverage[sample]
            ll = ll * (cover if features is None else cover[:, features])
        return -ll.sum(dim=-1) * (self.rate.out_features / counts.shape[1])
