"""Paired-modality data and mini-batches.

Counts live in a compact paged store (:mod:`sci2cl.packed`) until a mini-batch is decoded,
on whatever device trains. A batch carries, per modality, the encoder input as a ragged sparse
list (``indices``/``offsets``/``values``, consumed by an ``embedding_bag`` first layer), the
library sizes and, for training, the ZINB target: the dense counts of a feature subset drawn
before anything is densified. Encode-only batches (embedding, calibration) have no target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from sci2cl.packed import PackedCounts, PackedRows

MODALITIES = ("rna", "atac")
MAX_INPUT = 10.0  # encoder inputs are capped here


@dataclass(frozen=True)
class InputTransform:
    """Encoder input: ``log1p(x / library * target_sum) / scale`` (sparse-preserving).

    Centering is absorbed by the first layer's bias, so only the per-feature scale is kept;
    masked views set entries to zero, i.e. zero expression.
    """

    target_sum: float
    scale: np.ndarray  # (n_features,) float32, > 0

    @classmethod
    def fit(cls, counts: sp.csr_matrix) -> InputTransform:
        """Fit the library target (median library size) and per-feature standard deviations."""
        library = np.asarray(counts.sum(axis=1)).ravel()
        target = float(np.median(library[library > 0])) if np.any(library > 0) else 1.0
        logged = _lognorm(counts, library, target)
        mean = np.asarray(logged.mean(axis=0)).ravel()
        mean_sq = np.asarray(logged.multiply(logged).mean(axis=0)).ravel()
        std = np.sqrt(np.maximum(mean_sq - mean**2, 0.0))
        floor = max(float(np.median(std[std > 0])) if np.any(std > 0) else 1.0, 1e-3) * 0.1
        return cls(target_sum=target, scale=np.maximum(std, floor).astype(np.float32))

    def apply(self, counts: sp.csr_matrix, max_value: float = MAX_INPUT) -> sp.csr_matrix:
        """Transform raw counts (cells x features CSR) into encoder input values."""
        library = np.asarray(counts.sum(axis=1)).ravel()
        out = _lognorm(counts, library, self.target_sum)
        out.data /= self.scale[out.indices]
        np.minimum(out.data, max_value, out=out.data)
        return out


def _lognorm(counts: sp.csr_matrix, library: np.ndarray, target: float) -> sp.csr_matrix:
    out = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    per_row = np.repeat(target / np.maximum(library, 1.0), np.diff(out.indptr))
    out.data = np.log1p(out.data * per_row).astype(np.float32)
    return out


@dataclass
class ZINBTarget:
    """Reconstruction target: raw counts of a feature subset (None: all features)."""

    counts: torch.Tensor  # (B, k) float32
    features: torch.Tensor | None  # (k,) int64 feature numbers, or None for all d features


@dataclass
class ModalityBatch:
    """One modality of a mini-batch, as tensors. The sparse input may hold explicit zeros
    (page filler of the packed store): their values are 0, so they add nothing."""

    indices: torch.Tensor  # (nnz,) int64 feature index of each stored input value
    offsets: torch.Tensor  # (B,) int64 start of each cell in ``indices``
    values: torch.Tensor  # (nnz,) float32 transformed input values
    library: torch.Tensor  # (B,) float32 total raw counts
    target: ZINBTarget | None = None  # absent in encode-only batches

    @property
    def size(self) -> int:
        return int(self.offsets.shape[0])


@dataclass
class MultiomeBatch:
    """A mini-batch of paired cells."""

    rna: ModalityBatch
    atac: ModalityBatch
    index: torch.Tensor  # (B,) int64 row numbers in the dataset
    sample: torch.Tensor | None = None  # (B,) int64 sample codes (several samples only)

    def __getitem__(self, modality: str) -> ModalityBatch:
        return getattr(self, modality)


def decode(
    part: PackedRows,
    scale: torch.Tensor,
    target_sum: float,
    n_features: int,
    target_features: int | None = None,
) -> ModalityBatch:
    """Expand gathered pages into a batch on their device, with no host sync: columns,
    encoder inputs ``min(log1p(x / library * target_sum) / scale, MAX_INPUT)`` and, when
    ``target_features`` is given, the ZINB target on that many features drawn uniformly
    (torch's RNG on the device; all features when there are no more than that)."""
    cols = part.columns()
    counts = part.counts.to(torch.float32)
    per_cell = torch.full_like(part.library, target_sum) / part.library.clamp_min(1.0)
    logged = torch.log1p(counts * per_cell.index_select(0, part.page_cell).unsqueeze(1))
    values = (logged.view(-1) / scale.index_select(0, cols)).clamp_max(MAX_INPUT)
    target = None
    if target_features is not None:
        target = _target(cols, counts.view(-1), part, n_features, target_features)
    return ModalityBatch(cols, part.offsets, values, part.library, target)


def _target(cols, counts, part: PackedRows, d: int, k: int) -> ZINBTarget:
    """Dense (B, k) counts of a uniformly drawn feature subset, scattered from the entries."""
    n_cells, device, pages = part.library.shape[0], cols.device, part.steps.shape
    cell = part.page_cell.unsqueeze(1)  # broadcasts over the entries of each page
    features, width, where = None, d, cols.view(pages)
    if k < d:
        features = torch.randperm(d, device=device)[:k]
        position = torch.full((d,), k, dtype=torch.int64, device=device)
        position[features] = torch.arange(k, device=device)
        width = k + 1  # features outside the subset land in a spare last column
        where = position.index_select(0, cols).view(pages)
    slot = (cell * width + where).view(-1)
    dense = counts.new_zeros(n_cells * width).index_add_(0, slot, counts).view(n_cells, width)
    return ZINBTarget(dense if features is None else dense[:, :k], features)


class MultiomeDataset:
    """Raw counts of paired cells in packed stores (one per modality), their input
    transforms, and integer sample codes per cell when the cells come from several samples.
    ``counts`` may be sparse matrices or already packed stores."""

    def __init__(
        self,
        counts: dict[str, sp.spmatrix | PackedCounts],
        transforms: dict[str, InputTransform],
        sample: np.ndarray | None = None,
    ) -> None:
        n_cells = {m: counts[m].shape[0] for m in MODALITIES}
        if len(set(n_cells.values())) != 1:
            raise ValueError(f"modalities disagree on the number of cells: {n_cells}")
        self.packed = {
            m: c if isinstance(c, PackedCounts) else PackedCounts.from_csr(c)
            for m, c in ((m, counts[m]) for m in MODALITIES)
        }
        self.transforms = {m: transforms[m] for m in MODALITIES}
        self.n_cells = n_cells["rna"]
        if sample is not None and len(sample) != self.n_cells:
            raise ValueError(f"{len(sample)} sample codes for {self.n_cells} cells")
        self.sample = None if sample is None else np.asarray(sample, dtype=np.int64)

    def n_features(self, modality: str) -> int:
        return self.packed[modality].shape[1]

    @property
    def counts(self) -> dict[str, sp.csr_matrix]:
        """Raw counts decoded back to CSR (a copy; for inspection and small data)."""
        return {m: self.packed[m].to_csr() for m in MODALITIES}

    def batch(self, rows: np.ndarray, target_features: int | None = None) -> MultiomeBatch:
        """The rows ``rows`` as a batch on the CPU (encode-only unless ``target_features``)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        parts = {m: self.packed[m].gather(rows) for m in MODALITIES}
        scale = {m: torch.from_numpy(self.transforms[m].scale) for m in MODALITIES}
        return self.batch_from(rows, parts, scale, target_features)

    def batch_from(
        self,
        rows: np.ndarray,
        parts: dict[str, PackedRows],
        scale: dict[str, torch.Tensor],
        target_features: int | None = None,
    ) -> MultiomeBatch:
        """The batch of ``rows`` decoded from their gathered pages ``parts``, on the device of
        the pages and of each modality's feature ``scale``."""
        out = {
            m: decode(
                parts[m],
                scale[m],
                self.transforms[m].target_sum,
                self.n_features(m),
                target_features,
            )
            for m in MODALITIES
        }
        device = scale["rna"].device
        sample = None if self.sample is None else torch.from_numpy(self.sample[rows])
        return MultiomeBatch(
            out["rna"],
            out["atac"],
            torch.from_numpy(rows).to(device, non_blocking=True),
            None if sample is None else sample.to(device, non_blocking=True),
        )


def train_validation_split(
    n_cells: int, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random held-out split of cells for early stopping (no labels involved)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_cells)
    n_val = int(round(n_cells * validation_fraction))
    n_val = min(max(n_val, 1 if validation_fraction > 0 else 0), max(n_cells - 2, 0))
    return np.sort(order[n_val:]), np.sort(order[:n_val])
