"""Feature selection and alignment between prepared MuData and a model's feature lists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from sci2cl.data import MODALITIES

SELECTED = "sci2cl_selected"


def _csr(matrix) -> sp.csr_matrix:
    return sp.csr_matrix(matrix, dtype=np.float32)


def selected_features(mdata: MuData) -> dict[str, list[str]]:
    """The features marked ``var['sci2cl_selected']`` (all features when unmarked)."""
    out = {}
    for m in MODALITIES:
        var = mdata[m].var
        mask = var[SELECTED].to_numpy(bool) if SELECTED in var else np.ones(len(var), bool)
        names = list(var.index[mask].astype(str))
        if not names:
            raise ValueError(f"modality {m!r} has no selected features")
        out[m] = names
    return out


def aligned_counts(
    mdata: MuData, features: dict[str, list[str]]
) -> tuple[dict[str, sp.csr_matrix], dict[str, int]]:
    """Raw counts with columns in ``features`` order; absent features become zero columns.

    Returns the matrices and, per modality, how many requested features were absent.
    """
    counts, missing = {}, {}
    for m in MODALITIES:
        adata = mdata[m]
        position = pd.Index(adata.var_names.astype(str)).get_indexer(pd.Index(features[m]))
        present = position >= 0
        missing[m] = int((~present).sum())
        x = _csr(adata.X)
        # Selection matrix: source column -> target column, one sparse product, no loops.
        select = sp.csr_matrix(
            (np.ones(present.sum(), np.float32), (position[present], np.flatnonzero(present))),
            shape=(adata.n_vars, len(features[m])),
        )
        counts[m] = _csr(x @ select)
    return counts, missing
