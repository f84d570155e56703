"""The one input every method reads: the same cells, features and labels for all.

``snare.h5mu`` holds raw counts of the cells (all 10,309, or a seeded subset for
development) restricted to the features sci2cl's default ``prepare`` selects (all genes
detected in >= 3 cells, the 10,000 most frequently accessible peaks), so peers see the same
genes and peaks as sci2cl. ``labels.csv`` holds the reference labels (never used in training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.datasets import load_snare
from sci2cl.align import selected_features
from sci2cl.io import assemble_multiome, write_h5mu
from sci2cl.preprocess import PrepareConfig, prepare

LABELS = {"coarse": "cluster (remapped)", "fine": "Ident"}
BATCH = "Batch"  # the 12 SNARE-seq libraries (09A..09L), for the batch-mixing metrics
EXCLUDE = ("Mis",)


def write_input(data_dir: Path, folder: Path, max_cells: int | None, seed: int = 0) -> Path:
    """Write ``folder/snare.h5mu`` and ``folder/labels.csv`` (once); returns the h5mu path."""
    h5mu = folder / "snare.h5mu"
    if h5mu.exists() and (folder / "labels.csv").exists():
        return h5mu
    folder.mkdir(parents=True, exist_ok=True)
    mdata, meta = load_snare(data_dir)
    if max_cells and max_cells < mdata.n_obs:
        keep = np.sort(np.random.default_rng(seed).choice(mdata.n_obs, max_cells, replace=False))
        mdata, meta = mdata[keep].copy(), meta.iloc[keep]
    prepared, _ = prepare(mdata, PrepareConfig(), "snare")
    features = selected_features(prepared)
    rna = mdata["rna"][:, features["rna"]].copy()
    atac = mdata["atac"][:, features["atac"]].copy()
    write_h5mu(assemble_multiome(rna, atac), h5mu)
    meta.rename_axis("barcode").to_csv(folder / "labels.csv")
    return h5mu


def _metadata(folder: Path) -> pd.DataFrame:
    table = pd.read_csv(folder / "labels.csv", index_col=0)
    table.index = table.index.astype(str)
    return table


def read_labels(folder: Path) -> pd.DataFrame:
    """Labels indexed by barcode, one column per labelling in ``LABELS``."""
    table = _metadata(folder)
    return pd.DataFrame({name: table[column].astype(str) for name, column in LABELS.items()})


def read_batches(folder: Path) -> pd.Series:
    """Each cell's library (``BATCH``), indexed by barcode like ``read_labels``."""
    return _metadata(folder)[BATCH].astype(str)
