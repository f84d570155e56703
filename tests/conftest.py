"""Shared pytest fixtures: paths to the committed real-data fixtures and small builders."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

DATA = Path(__file__).resolve().parent / "data"
PBMC_OUTS = DATA / "pbmc_arc" / "outs"
PBMC_H5 = PBMC_OUTS / "filtered_feature_bc_matrix.h5"
PBMC_MEX = PBMC_OUTS / "filtered_feature_bc_matrix"
SNARE_H5MU = DATA / "snare_subset" / "snare_subset.h5mu"
SNARE_LABELS = DATA / "snare_subset" / "labels.csv"
EDGE = DATA / "edge_cases"
GEX_ONLY_H5 = EDGE / "pbmc_granulocyte_ff_bc_ex.h5"
PEAKS_ONLY_H5 = EDGE / "10k_pbmc_ATACv2_f_bc_ex.h5"
GEX_ONLY_EMPTY_MEX = EDGE / "gex_only_empty_mex"


@pytest.fixture(scope="session")
def pbmc_outs() -> Path:
    """Cell Ranger ARC-style outs/ folder (1,000 PBMC cells, 45 genes + 174 peaks)."""
    return PBMC_OUTS


@pytest.fixture(scope="session")
def snare_h5mu() -> Path:
    """Labelled SNARE-seq subset (1,500 cells, 1,677 genes, 2,636 peaks) as .h5mu."""
    return SNARE_H5MU


@pytest.fixture(scope="session")
def snare_labels() -> pd.DataFrame:
    """``cluster (remapped)`` and ``Ident`` per barcode of the SNARE subset."""
    return pd.read_csv(SNARE_LABELS, index_col="barcode")


@pytest.fixture
def pbmc_mdata():
    """Fresh MuData read from the PBMC ARC fixture."""
    from sci2cl.io import read_multiome

    return read_multiome(PBMC_OUTS)


@pytest.fixture
def snare_mdata():
    """Fresh MuData read from the SNARE subset fixture."""
    from sci2cl.io import read_multiome

    return read_multiome(SNARE_H5MU)
