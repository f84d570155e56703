"""Semi-synthetic deep-ATAC titration data: real SNARE-seq RNA, ATAC redrawn from the labels.

Each cell keeps its real RNA counts. Its ATAC is redrawn over all 25,734 peaks from its fine
type's (``Ident``) pseudobulk profile, smoothed as ``0.8 * type + 0.2 * global`` (each profile
with a +1 pseudocount before normalising), with ``Poisson(D * real depth / median real depth)``
counts drawn multinomially. The ATAC therefore carries the fine labels and nothing else (no
cell-specific biology): it measures whether a model uses a modality that carries signal, not
realism.
"""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from sci2cl.io import assemble_multiome

TYPE_COLUMN = "Ident"
TYPE_WEIGHT = 0.8
DEPTHS = (83, 300, 1000, 3000)
SEED = 0


def type_profiles(atac: sp.csr_matrix, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(types x peaks) smoothed accessibility profiles (rows sum to 1) and each cell's row."""
    codes, _ = pd.factorize(types, sort=True)
    member = sp.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))))
    pseudobulk = np.asarray((member @ atac).todense(), dtype=np.float64) + 1.0
    total = np.asarray(atac.sum(axis=0), dtype=np.float64).ravel() + 1.0
    typed = pseudobulk / pseudobulk.sum(axis=1, keepdims=True)
    profile = TYPE_WEIGHT * typed + (1.0 - TYPE_WEIGHT) * (total / total.sum())
    return profile, codes


def redraw_atac(
    atac: sp.csr_matrix, types: np.ndarray, depth: float, seed: int = SEED
) -> sp.csr_matrix:
    """New cells x peaks counts: per cell ``Poisson(depth * n / median n)`` draws from its
    type's profile (drawn type by type: one categorical sample of all the type's counts,
    split into cells, which is the per-cell multinomial)."""
    rng = np.random.default_rng(seed)
    real = np.asarray(atac.sum(axis=1), dtype=np.float64).ravel()
    n_counts = rng.poisson(depth * real / np.median(real))
    profile, codes = type_profiles(atac, types)
    rows, cols = [], []
    for code in range(profile.shape[0]):
        cells = np.flatnonzero(codes == code)
        draws = rng.choice(profile.shape[1], size=int(n_counts[cells].sum()), p=profile[code])
        rows.append(np.repeat(cells, n_counts[cells]))
        cols.append(draws)
    rows_all, cols_all = np.concatenate(rows), np.concatenate(cols)
    counts = sp.csr_matrix(
        (np.ones(rows_all.size, np.float32), (rows_all, cols_all)), shape=atac.shape
    )
    counts.sum_duplicates()
    return counts


def titration(mdata: md.MuData, meta: pd.DataFrame, depth: float, seed: int = SEED) -> md.MuData:
    """A copy of ``mdata`` whose ATAC counts are redrawn at ``depth`` (see module doc)."""
    types = meta.loc[mdata.obs_names, TYPE_COLUMN].astype(str).to_numpy()
    atac = mdata["atac"].copy()
    atac.X = redraw_atac(sp.csr_matrix(atac.X), types, depth, seed)
    return assemble_multiome(mdata["rna"].copy(), atac)
