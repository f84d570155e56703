"""Align cells to a feature list: the selected features, genes by name, peaks by name or overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from sci2cl.data import MODALITIES
from sci2cl.peaks import overlap_matrix, parse_intervals, var_intervals
from sci2cl.preprocess import SELECTED


def _csr(matrix) -> sp.csr_matrix:
    return sp.csr_matrix(matrix, dtype=np.float32)


def name_matrix(names: pd.Index, targets: list[str] | pd.Index) -> tuple[sp.csr_matrix, np.ndarray]:
    """(names x targets) 0/1 matrix taking each target from the name equal to it, and which
    targets have one: ``counts @ matrix`` puts columns in ``targets`` order, absent ones zero."""
    position = pd.Index(names.astype(str)).get_indexer(pd.Index(targets))
    present = position >= 0
    ones = np.ones(present.sum(), np.float32)
    shape = (len(names), len(targets))
    return sp.csr_matrix((ones, (position[present], np.flatnonzero(present))), shape), present


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
        select, present = name_matrix(mdata[m].var_names, features[m])
        counts[m], missing[m] = _csr(_csr(mdata[m].X) @ select), int((~present).sum())
    return counts, missing


def peak_mapping(var: pd.DataFrame, model_peaks: list[str]) -> sp.csr_matrix | None:
    """(query peaks x model peaks) matrix: a model peak present by name takes that column;
    any other model peak sums the query peaks overlapping it. None when either side has no
    genomic intervals (then peaks are matched by name only)."""
    try:
        query, target = var_intervals(var), parse_intervals(model_peaks)
    except ValueError:
        return None
    exact, by_name = name_matrix(var.index, model_peaks)
    overlap = overlap_matrix(query, target) @ sp.diags((~by_name).astype(np.float32))
    mapping = sp.csr_matrix(exact + overlap)
    mapping.eliminate_zeros()
    return mapping


def query_counts(
    mdata: MuData, features: dict[str, list[str]]
) -> tuple[dict[str, sp.csr_matrix], dict[str, int]]:
    """Counts in the order of ``features`` and the number of features absent per modality
    (genes by name; peaks by name, else by genomic overlap); ValueError when a modality has
    none of its features."""
    counts, missing = aligned_counts(mdata, features)
    mapping = peak_mapping(mdata["atac"].var, features["atac"])
    if mapping is not None:
        counts["atac"] = _csr(_csr(mdata["atac"].X) @ mapping)
        missing["atac"] = int((np.diff(mapping.tocsc().indptr) == 0).sum())
    for m in MODALITIES:
        if missing[m] == len(features[m]):
            raise ValueError(f"no {m} feature of the model is present in the input")
    return counts, missing
