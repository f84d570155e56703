"""Sparse paired-modality data and mini-batches.

Counts stay in scipy CSR until a mini-batch is materialised. A batch carries, per modality,
the encoder input as a ragged sparse list (``indices``/``offsets``/``values``, consumed by an
``embedding_bag`` first layer), the dense raw counts of the batch (ZINB target) and the
library sizes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

MODALITIES = ("rna", "atac")


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

    def apply(self, counts: sp.csr_matrix, max_value: float = 10.0) -> sp.csr_matrix:
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
class ModalityBatch:
    """One modality of a mini-batch, as tensors."""

    indices: torch.Tensor  # (nnz,) int64 feature index of each stored input value
    offsets: torch.Tensor  # (B,) int64 start of each cell in ``indices``
    values: torch.Tensor  # (nnz,) float32 transformed input values
    counts: torch.Tensor  # (B, d) float32 raw counts (ZINB target)
    library: torch.Tensor  # (B,) float32 total raw counts

    def to(self, device: torch.device) -> ModalityBatch:
        return ModalityBatch(*(t.to(device, non_blocking=True) for t in self.__dict__.values()))

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

    def to(self, device: torch.device) -> MultiomeBatch:
        sample = None if self.sample is None else self.sample.to(device, non_blocking=True)
        return MultiomeBatch(
            self.rna.to(device), self.atac.to(device), self.index.to(device), sample
        )

    def __getitem__(self, modality: str) -> ModalityBatch:
        return getattr(self, modality)


class MultiomeDataset:
    """Raw counts and encoder inputs of paired cells, both modalities in CSR; ``sample``
    holds integer sample codes per cell when the cells come from several samples."""

    def __init__(
        self,
        counts: dict[str, sp.csr_matrix],
        transforms: dict[str, InputTransform],
        sample: np.ndarray | None = None,
    ) -> None:
        n_cells = {m: counts[m].shape[0] for m in MODALITIES}
        if len(set(n_cells.values())) != 1:
            raise ValueError(f"modalities disagree on the number of cells: {n_cells}")
        self.counts = {m: sp.csr_matrix(counts[m], dtype=np.float32) for m in MODALITIES}
        self.inputs = {m: transforms[m].apply(self.counts[m]) for m in MODALITIES}
        self.n_cells = n_cells["rna"]
        if sample is not None and len(sample) != self.n_cells:
            raise ValueError(f"{len(sample)} sample codes for {self.n_cells} cells")
        self.sample = None if sample is None else np.asarray(sample, dtype=np.int64)

    def n_features(self, modality: str) -> int:
        return self.counts[modality].shape[1]

    def batch(self, rows: np.ndarray) -> MultiomeBatch:
        """Materialise the rows ``rows`` as a batch (vectorised CSR slicing, no loops)."""
        parts = {m: self._modality_batch(m, rows) for m in MODALITIES}
        sample = None if self.sample is None else torch.from_numpy(self.sample[rows])
        return MultiomeBatch(
            parts["rna"], parts["atac"], torch.from_numpy(rows.astype(np.int64)), sample
        )

    def _modality_batch(self, modality: str, rows: np.ndarray) -> ModalityBatch:
        inp = self.inputs[modality][rows]
        raw = self.counts[modality][rows]
        return ModalityBatch(
            indices=torch.from_numpy(inp.indices.astype(np.int64)),
            offsets=torch.from_numpy(inp.indptr[:-1].astype(np.int64)),
            values=torch.from_numpy(inp.data.astype(np.float32)),
            counts=torch.from_numpy(raw.toarray()),
            library=torch.from_numpy(np.asarray(raw.sum(axis=1), dtype=np.float32).ravel()),
        )

    def batches(
        self,
        rows: np.ndarray,
        batch_size: int,
        shuffle: bool = False,
        rng: np.random.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[MultiomeBatch]:
        """Iterate mini-batches over ``rows`` (shuffled with ``rng`` when asked)."""
        order = rng.permutation(rows) if shuffle and rng is not None else np.asarray(rows)
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            chunk = order[start : start + batch_size]
            if len(chunk):
                yield self.batch(chunk)


def train_validation_split(
    n_cells: int, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random held-out split of cells for early stopping (no labels involved)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_cells)
    n_val = int(round(n_cells * validation_fraction))
    n_val = min(max(n_val, 1 if validation_fraction > 0 else 0), max(n_cells - 2, 0))
    return np.sort(order[n_val:]), np.sort(order[:n_val])
