"""The scI2CL module: two ZINB autoencoders, masked-view attention, cross-attention fusion."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sci2cl.data import MODALITIES, MultiomeBatch
from sci2cl.model.autoencoder import MAX_LOG_RATE, Encoder, ZINBDecoder
from sci2cl.model.config import ModelConfig
from sci2cl.model.covariate import negatives_mask, restrict
from sci2cl.model.expression import (
    CHUNK_VALUES,
    FIT_CELLS,
    log_normalised,
    principal_axes,
    standardised,
)
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
        coverage: dict[str, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.n_features = dict(n_features)
        c = config
        self.encoders = nn.ModuleDict(
            {m: Encoder(n_features[m], c.hidden_dims, c.latent_dim, c.dropout) for m in MODALITIES}
        )
        freq, cover = mean_frequency or {}, coverage or {}
        n_cov = c.n_samples if c.batch_covariate else 0
        self.decoders = nn.ModuleDict(
            {
                m: ZINBDecoder(
                    c.latent_dim,
                    c.hidden_dims,
                    n_features[m],
                    c.dropout,
                    freq.get(m),
                    n_cov,
                    c.n_samples,
                    cover.get(m),
                )
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
            width = c.latent_dim
            if c.joint_components:  # the expression space (set after training)
                d, width = n_features[m], c.joint_components
                self.register_buffer(f"expression_mean_{m}", torch.zeros(d))
                self.register_buffer(f"expression_scale_{m}", torch.zeros(d))
                self.register_buffer(f"expression_axes_{m}", torch.zeros(d, width))
            self.register_buffer(f"stream_mean_{m}", torch.zeros(width))
            self.register_buffer(f"stream_scale_{m}", torch.tensor(1.0))
        # set by the trainer: whether MOC/MOM gradients reach the encoders this epoch
        self.inter_to_encoders = True

    def log_depth(self, batch: MultiomeBatch, modality: str) -> torch.Tensor:
        """Log library size of each cell, centred on the training mean library."""
        mean = getattr(self, f"mean_library_{modality}")
        return torch.log1p(batch[modality].library) - torch.log1p(mean)

    def encode(self, batch: MultiomeBatch) -> dict[str, torch.Tensor]:
        """Per-modality latents and the joint embedding; deterministic in eval mode."""
        z = {m: self.encoders[m].encode_batch(batch[m]) for m in MODALITIES}
        joint = self.joint(self.streams(z["rna"], z["atac"]), batch)
        return {"rna": z["rna"], "atac": z["atac"], "joint": joint}

    def streams(self, z_rna: torch.Tensor, z_atac: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two cross-attended streams (each modality's latent plus what it takes from
        the other), or the latents themselves without cross-attention."""
        if not self.config.use_cross_attention:
            return {"rna": z_rna, "atac": z_atac}
        s = self.fusion.cross(z_rna, z_atac)
        return {"rna": s["rna_to_atac"], "atac": s["atac_to_rna"]}

    def expression(self, modality: str, stream: torch.Tensor) -> torch.Tensor:
        """The stream decoded to the modality's log-normalised expected expression (cells x
        features); with sample covariates, every cell is decoded as in the first sample
        (``fit`` trains such models with ``joint_components`` 0: see docs/method.md)."""
        decoder = self.decoders[modality]
        sample = None
        if decoder.n_covariates:
            sample = torch.zeros(stream.shape[0], dtype=torch.long, device=stream.device)
        log_rate = decoder.rate(decoder.hidden(stream, sample)).clamp(max=MAX_LOG_RATE)
        return log_normalised(log_rate)  # clamped as the decoder's own mean is

    def coordinates(self, modality: str, stream: torch.Tensor) -> torch.Tensor:
        """A stream's place in the joint before standardisation: its decoded expression on
        the principal axes found after training (``joint_components`` of them), or the stream
        itself in models saved without them."""
        if not self.config.joint_components:
            return stream
        mean, scale, axes = (
            getattr(self, f"expression_{name}_{modality}") for name in ("mean", "scale", "axes")
        )
        return torch.cat(
            [
                standardised(self.expression(modality, s), mean, scale) @ axes
                for s in self._decoding_chunks(modality, stream)
            ]
        )

    def _decoding_chunks(self, modality: str, stream: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``stream`` in row blocks whose decoded expression holds at most CHUNK_VALUES."""
        return stream.split(max(1, CHUNK_VALUES // self.n_features[modality]))

    def joint(self, streams: dict[str, torch.Tensor], batch: MultiomeBatch) -> torch.Tensor:
        """Joint embedding: each stream's coordinates (:meth:`coordinates`) standardised with
        training statistics, then weighted by the cell's reliability in that modality relative
        to its best one: with ``n`` counts, ``r = n / (n + joint_half_counts)`` and weight
        ``r / max(r_rna, r_atac)``. A nearly empty modality cannot drag a cell's position;
        rich ones weigh equally."""
        parts = [
            (self.coordinates(m, streams[m]) - getattr(self, f"stream_mean_{m}"))
            * getattr(self, f"stream_scale_{m}")
            for m in MODALITIES
        ]
        half = self.config.joint_half_counts
        if half > 0:
            library = torch.stack([batch[m].library for m in MODALITIES], dim=-1)
            reliability = library / (library + half)
            weight = reliability / reliability.amax(dim=-1, keepdim=True).clamp_min(1e-12)
            parts = [p * weight[:, i : i + 1] for i, p in enumerate(parts)]
        return torch.cat(parts, dim=-1)

    @torch.no_grad()
    def calibrate_joint(self, batches: Iterable[MultiomeBatch]) -> None:
        """Fit the joint's coordinates on the cells of ``batches``: each modality's principal
        axes of decoded expression (when ``joint_components``), then each stream's centre and
        scale (1 / mean per-dimension SD)."""
        parts: dict[str, list[torch.Tensor]] = {m: [] for m in MODALITIES}
        for batch in batches:
            z = {m: self.encoders[m].encode_batch(batch[m]) for m in MODALITIES}
            for m, s in self.streams(z["rna"], z["atac"]).items():
                parts[m].append(s)
        for m in MODALITIES:
            streams = torch.cat(parts[m])
            if self.config.joint_components:  # on evenly spread cells, at most FIT_CELLS
                self._fit_expression_axes(m, streams[:: -(-streams.shape[0] // FIT_CELLS)])
            x = self.coordinates(m, streams).double()
            sd = x.std(0, unbiased=False).mean()
            getattr(self, f"stream_mean_{m}").copy_(x.mean(0).float())
            getattr(self, f"stream_scale_{m}").fill_(float(1.0 / max(float(sd), 1e-6)))

    def _fit_expression_axes(self, modality: str, streams: torch.Tensor) -> None:
        """Principal axes of the decoded expression of ``streams``."""
        chunks = self._decoding_chunks(modality, streams)
        found = principal_axes(
            lambda: (self.expression(modality, s) for s in chunks), self.config.joint_components
        )
        for name, value in zip(("mean", "scale", "axes"), found, strict=True):
            getattr(self, f"expression_{name}_{modality}").copy_(value)

    def loss(self, batch: MultiomeBatch, full: bool = True) -> dict[str, torch.Tensor]:
        """Loss dict for one batch. ``full=False`` is the warm-up: reconstruction only."""
        c = self.config
        z = {m: self.encoders[m].encode_batch(batch[m]) for m in MODALITIES}
        terms: dict[str, torch.Tensor] = {}
        for m in MODALITIES:
            nll = self.decoders[m].nll(z[m], batch[m], batch.sample)
            terms[f"zinb_{m}"] = nll.mean() / getattr(self, f"mean_library_{m}")
        zero = z["rna"].new_zeros(())
        if full and c.n_views > 0 and c.lambda_mse > 0:
            for m in MODALITIES:
                views = self.encoders[m].encode_views(batch[m], c.n_views, c.mask_rate)
                terms[f"mse_{m}"] = consistency_loss(self.views[m](views), z[m])
        else:
            terms.update({f"mse_{m}": zero for m in MODALITIES})
        if full and batch.rna.size > 1:  # (one cell has no negatives: no MOC/MOM terms)
            g = c.inter_gradient if self.inter_to_encoders else "none"
            z = {m: z[m] if g in ("both", m) else z[m].detach() for m in MODALITIES}
            depth = torch.stack([self.log_depth(batch, m) for m in MODALITIES], dim=-1)
            p = {
                m: self.projections[m](torch.cat([z[m], depth[:, i : i + 1]], dim=-1))
                for i, m in enumerate(MODALITIES)
            }
            allowed = negatives_mask(batch.sample, c.negatives)
            terms["moc"] = info_nce(p["rna"], p["atac"], c.temperature, allowed)
            if c.use_cross_attention and c.lambda_mom > 0:
                with torch.no_grad():
                    sim = F.normalize(p["rna"], dim=-1) @ F.normalize(p["atac"], dim=-1).T
                    sim = restrict(sim, allowed)
                terms["mom"] = matching_loss(
                    self.fusion, z["rna"], z["atac"], depth, sim / c.temperature
                )
            else:
                terms["mom"] = zero
        elif not full:
            terms["moc"] = zero
            terms["mom"] = zero
        terms["loss"] = (
            c.lambda_rec * (terms["zinb_rna"] + terms["zinb_atac"])
            + c.lambda_mse * (terms["mse_rna"] + terms["mse_atac"])
            + c.lambda_moc * terms.get("moc", zero)
            + c.lambda_mom * terms.get("mom", zero)
        )
        return terms
