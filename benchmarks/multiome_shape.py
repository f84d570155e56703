"""10x-Multiome-shaped synthetic counts for the loader profile and the 10x scaling study.

Shape and sparsity, not biology. Every parameter below is an assumption of this generator (set
to the issue's target: 36k genes -> 4k HVGs, 120k peaks, 3-5k ATAC non-zeros per cell), not a
measurement; the benchmarks report the sparsity they actually got.

- 12 cell types (Dirichlet(2) proportions). Per type, RNA draws from a gene profile
  (log-normal base frequencies, sigma 2, with 3% of genes shifted by N(0, 2) in log space) and
  ATAC from a peak profile (log-normal base accessibility, sigma 1, with 20% of peaks opened
  e^N(1.5, 0.5)-fold).
- Per cell, RNA UMIs and ATAC fragments in peaks are log-normal (medians 4,000 and 4,200,
  sigmas 0.5 and 0.35, correlation 0.5 between the two: cell quality), each UMI / fragment
  lands in a feature drawn from the cell's type profile, and a fragment adds 1 or 2 cut sites.
- HVGs: the product's own Seurat v3 selection (``highly_variable_genes``) on a 20k-cell pilot;
  larger runs then draw only the selected genes (the UMIs that fall on them, binomially), which
  leaves their distribution unchanged.

Cells come in chunks, so any number of them is generated and packed in bounded memory; a given
seed and chunk size give the same cells.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from sci2cl.preprocess import highly_variable_genes

GENES, HVGS, PEAKS, TYPES = 36_000, 4_000, 120_000, 12
RNA_MEDIAN, RNA_SIGMA = 4_000, 0.5
ATAC_MEDIAN, ATAC_SIGMA = 4_200, 0.35
DEPTH_CORRELATION = 0.5
PILOT_CELLS = 20_000
CHUNK = 2_000


@dataclass
class MultiomeShape:
    """Type profiles (rows sum to 1) and type proportions; ``genes`` the RNA columns kept."""

    rna: np.ndarray  # (types, genes kept)
    rna_kept: np.ndarray  # (types,) share of each type's UMIs that fall on the kept genes
    atac: np.ndarray  # (types, peaks)
    weights: np.ndarray  # (types,)
    genes: np.ndarray  # indices of the kept genes among GENES

    @classmethod
    def random(cls, seed: int = 0) -> MultiomeShape:
        """All GENES genes (call ``select_hvgs`` to keep the HVGs)."""
        rng = np.random.default_rng(seed)
        base = rng.normal(0.0, 2.0, GENES)
        shifts = rng.normal(0.0, 2.0, (TYPES, GENES)) * (rng.random((TYPES, GENES)) < 0.03)
        rna = _normalise(np.exp(base + shifts))
        open_ = rng.random((TYPES, PEAKS)) < 0.2
        boost = np.where(open_, np.exp(rng.normal(1.5, 0.5, (TYPES, PEAKS))), 1.0)
        atac = _normalise(np.exp(rng.normal(0.0, 1.0, PEAKS)) * boost)
        weights = rng.dirichlet(np.full(TYPES, 2.0))
        return cls(rna, np.ones(TYPES), atac, weights, np.arange(GENES))

    def select_hvgs(self, pilot_rna: sp.csr_matrix, n_top: int = HVGS) -> MultiomeShape:
        """Keep the ``n_top`` HVGs of a pilot drawn from this shape (all genes kept so far)."""
        genes = np.flatnonzero(highly_variable_genes(pilot_rna, n_top))
        kept = self.rna[:, genes].sum(axis=1)
        rna = self.rna[:, genes] / kept[:, None]
        return MultiomeShape(rna, self.rna_kept * kept, self.atac, self.weights, genes)

    def chunks(
        self, n_cells: int, seed: int = 1, chunk: int = CHUNK
    ) -> Iterator[tuple[sp.csr_matrix, sp.csr_matrix]]:
        """(RNA, ATAC) raw counts of ``n_cells`` cells, ``chunk`` cells at a time."""
        rng = np.random.default_rng(seed)
        for start in range(0, n_cells, chunk):
            n = min(chunk, n_cells - start)
            types = rng.choice(TYPES, size=n, p=self.weights)
            z = rng.multivariate_normal(
                [0.0, 0.0], [[1.0, DEPTH_CORRELATION], [DEPTH_CORRELATION, 1.0]], n
            )
            umis = np.round(RNA_MEDIAN * np.exp(RNA_SIGMA * z[:, 0])).astype(np.int64)
            umis = rng.binomial(umis, self.rna_kept[types])
            fragments = np.round(ATAC_MEDIAN * np.exp(ATAC_SIGMA * z[:, 1])).astype(np.int64)
            rna = _draw(rng, self.rna, types, umis, np.ones)
            atac = _draw(rng, self.atac, types, fragments, lambda k: rng.integers(1, 3, k))
            yield rna, atac


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=-1, keepdims=True)


def _draw(rng, profile: np.ndarray, types: np.ndarray, totals: np.ndarray, weight) -> sp.csr_matrix:
    """Cells x features counts, ``totals`` draws per cell from its type's profile (drawn per
    type as one multinomial over features, each draw then given to a cell of that type in
    proportion to its total: the same distribution, vectorised)."""
    n, width = len(types), profile.shape[1]
    cells, features = [], []
    for t in np.unique(types):  # one draw per type (12 types)
        members = np.flatnonzero(types == t)
        per_feature = rng.multinomial(int(totals[members].sum()), profile[t] / profile[t].sum())
        features.append(np.repeat(np.arange(width), per_feature))
        share = np.cumsum(totals[members])
        pick = np.searchsorted(share, rng.random(len(features[-1])) * share[-1], side="right")
        cells.append(members[pick])
    cell, feature = np.concatenate(cells), np.concatenate(features)
    order = np.argsort(cell.astype(np.uint16 if n <= 65535 else np.int64), kind="stable")
    cell, feature = cell[order], feature[order]  # by cell, features ascending within a cell
    key = cell * width + feature
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    values = np.add.reduceat(weight(len(cell)).astype(np.float32), first)
    indptr = np.r_[0, np.cumsum(np.bincount(cell[first], minlength=n))]
    return sp.csr_matrix((values, feature[first], indptr), shape=(n, width))


def tenx_shape(seed: int = 0) -> tuple[MultiomeShape, dict]:
    """The generator with HVGs selected on a PILOT_CELLS pilot, and the pilot's counts
    restricted to them (for fitting input transforms and mean frequencies)."""
    shape = MultiomeShape.random(seed)
    pilot = [pair for pair in shape.chunks(PILOT_CELLS, seed=seed + 100)]
    rna = sp.vstack([r for r, _ in pilot], format="csr")
    atac = sp.vstack([a for _, a in pilot], format="csr")
    selected = shape.select_hvgs(rna)
    return selected, {"rna": sp.csr_matrix(rna[:, selected.genes]), "atac": atac}
