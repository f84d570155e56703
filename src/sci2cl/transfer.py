"""Map new cells into a trained model's space: same preparation, same features."""

from __future__ import annotations

import math
from dataclasses import fields

import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from sci2cl.align import SELECTED, aligned_counts
from sci2cl.data import MODALITIES
from sci2cl.embed import TrainedModel
from sci2cl.peaks import overlap_matrix, parse_intervals, var_intervals
from sci2cl.preprocess import PrepareConfig, prepare


def model_prepare_config(trained: TrainedModel) -> PrepareConfig:
    """The QC configuration the training data went through (defaults where unknown)."""
    stored = dict(trained.train_params.get("prepare", {}).get("config", {}) or {})
    values = {}
    for spec in fields(PrepareConfig):
        value = stored.get(spec.name)
        if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
            values[spec.name] = type(spec.default)(value) if spec.default is not None else value
    return PrepareConfig(**values)


def prepare_like_model(mdata: md.MuData, trained: TrainedModel, sample: str) -> md.MuData:
    """Prepared input passes through; raw input gets the model's cell QC."""
    if all(SELECTED in mdata[m].var for m in MODALITIES):
        return mdata
    prepared, _ = prepare(mdata, model_prepare_config(trained), sample)
    return prepared


def peak_mapping(var: pd.DataFrame, model_peaks: list[str]) -> sp.csr_matrix | None:
    """(query peaks x model peaks) matrix: a model peak present by name takes that column;
    any other model peak sums the query peaks overlapping it. None when either side has no
    genomic intervals (then peaks are matched by name only)."""
    try:
        query, target = var_intervals(var), parse_intervals(model_peaks)
    except ValueError:
        return None
    position = pd.Index(var.index.astype(str)).get_indexer(pd.Index(model_peaks))
    by_name = position >= 0
    exact = sp.csr_matrix(
        (np.ones(by_name.sum(), np.float32), (position[by_name], np.flatnonzero(by_name))),
        shape=(len(query), len(target)),
    )
    overlap = overlap_matrix(query, target) @ sp.diags((~by_name).astype(np.float32))
    mapping = sp.csr_matrix(exact + overlap)
    mapping.eliminate_zeros()
    return mapping


def counts_for_model(mdata: md.MuData, trained: TrainedModel):
    """Counts in the model's feature order and the number of model features absent per
    modality (genes by name; peaks by name, else by genomic overlap); no overlap at all in a
    modality is an error."""
    counts, missing = aligned_counts(mdata, trained.features)
    mapping = peak_mapping(mdata["atac"].var, trained.features["atac"])
    if mapping is not None:
        x = sp.csr_matrix(mdata["atac"].X, dtype=np.float32)
        counts["atac"] = sp.csr_matrix(x @ mapping)
        missing["atac"] = int((np.diff(mapping.tocsc().indptr) == 0).sum())
    for m in MODALITIES:
        if missing[m] == len(trained.features[m]):
            raise ValueError(f"no {m} feature of the model is present in the input")
    return counts, missing
