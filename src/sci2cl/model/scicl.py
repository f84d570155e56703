"""The scI2CL module: two ZINB autoencoders, masked-view attention, cross-attention fusion."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sci2cl.data import MODALITIES, MultiomeBatch
from sci2cl.model.autoencoder import Encoder, ZINBDecoder
from sci2cl.model.config import ModelConfig
from sci2cl.model.inter import PairFusion, info_nce, matching_loss
from sci2cl.model.intra import MaskedViewAttention, consistency_loss


class Sci2clModule(nn.Module):
    """Computes embeddings and the loss dict of scI2CL; knows nothing of optimisers or files.

    Loss = lambda_rec * (ZINB_rna + ZINB_atac) + lambda_mse * (MSE_rna + MSE_atac)
         + lambda_moc * MOC + lambda_mom * MOM, where ZINB is in nats per observed count.
    """

    def __init__(
        self,
        n_features: dict[str, int],
        config: ModelConfig,
        mean_frequency: dict[str, np.ndarray] | None = None,
        mean_library: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.n_features = dict(n_features)
        c = config
        self.encoders = nn.ModuleDict(
            {m: Encoder(n_features[m], c.hidden_dims, c.latent_dim, c.dropout) for m in MODALITIES}
        )
        freq = mean_frequency or {}
        self.decoders = nn.ModuleDict(
            {
                m: ZINBDecoder(c.latent_dim, c.hidden_dims, n_features[m], c.dropout, freq.get(m))
                for m in MODALITIES
            }
        )
        self.views = nn.ModuleDict(
            {m: MaskedViewAttention(c.latent_dim, c.n_heads) for m in MODALITIES}
        )
        # MOC projection heads also see the cell's log depth, so the encoders are not pushed
        # to encode sequencing depth (the easiest signal two modalities of a cell share).
        self.projections = nn.ModuleDict(
            {m: nn.Linear(c.latent_dim + 1, c.latent_dim) for m in MODALITIES}
        )
        self.fusion = PairFusion(c.latent_dim, c.n_tokens, c.n_heads)
        library = mean_library or {m: 1.0 for m in MODALITIES}
        for m in MODALITIES:
            self.register_buffer(f"mean_library_{m}", torch.tensor(float(library[m])))

    def log_depth(self, batch: MultiomeBatch, modality: str) -> torch.Tensor:
        """Log library size of each cell, centred on the training mean library."""
        mean = getattr(self, f"mean_library_{modality}")
        return torch.log1p(batch[modality].library) - torch.log1p(mean)

    def encode(self, batch: MultiomeBatch) -> dict[str, torch.Tensor]:
        """Per-modality latents and the joint embedding; deterministic in eval mode."""
        z = {m: self.encoders[m].encode_batch(batch[m]) for m in MODALITIES}
        joint = self.joint(z["rna"], z["atac"])
        return {"rna": z["rna"], "atac": z["atac"], "joint": joint}

    def joint(self, z_rna: torch.Tensor, z_atac: torch.Tensor) -> torch.Tensor:
        if self.config.use_cross_attention:
            return self.fusion(z_rna, z_atac)
        return torch.cat([z_rna, z_atac], dim=-1)

    def loss(
        self, batch: MultiomeBatch, full: bool = True, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Loss dict for one batch. ``full=False`` is the warm-up: reconstruction only."""
        c = self.config
        z = {m: self.encoders[m].encode_batch(batch[m]) for m in MODALITIES}
        terms: dict[str, torch.Tensor] = {}
        for m in MODALITIES:
            nll = self.decoders[m].nll(z[m], batch[m], c.decoder_features_per_step, generator)
            terms[f"zinb_{m}"] = nll.mean() / getattr(self, f"mean_library_{m}")
        zero = z["rna"].new_zeros(())
        if full and c.use_views and c.n_views > 0 and c.lambda_mse > 0:
            for m in MODALITIES:
                views = self.encoders[m].encode_views(batch[m], c.n_views, c.mask_rate, generator)
                terms[f"mse_{m}"] = consistency_loss(self.views[m](views), z[m])
        else:
            terms.update({f"mse_{m}": zero for m in MODALITIES})
        if full:
            g = c.inter_gradient
            z = {m: z[m] if g in ("both", m) else z[m].detach() for m in MODALITIES}
            depth = torch.stack([self.log_depth(batch, m) for m in MODALITIES], dim=-1)
            p = {
                m: self.projections[m](torch.cat([z[m], depth[:, i : i + 1]], dim=-1))
                for i, m in enumerate(MODALITIES)
            }
            terms["moc"] = info_nce(p["rna"], p["atac"], c.temperature)
            if c.use_cross_attention and c.lambda_mom > 0 and batch.rna.size > 1:
                with torch.no_grad():
                    sim = F.normalize(p["rna"], dim=-1) @ F.normalize(p["atac"], dim=-1).T
                terms["mom"] = matching_loss(
                    self.fusion, z["rna"], z["atac"], depth, sim / c.temperature, generator
                )
            else:
                terms["mom"] = zero
        else:
            terms["moc"] = zero
            terms["mom"] = zero
        terms["loss"] = (
            c.lambda_rec * (terms["zinb_rna"] + terms["zinb_atac"])
            + c.lambda_mse * (terms["mse_rna"] + terms["mse_atac"])
            + c.lambda_moc * terms["moc"]
            + c.lambda_mom * terms["mom"]
        )
        return terms
