"""Combine prepared samples into one MuData for training."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

from sci2cl.data import MODALITIES
from sci2cl.features import SELECTED
from sci2cl.io import assemble_multiome


def combine_samples(samples: list[md.MuData]) -> md.MuData:
    """One sample is returned as is. Several are stacked cell-wise: features are the union
    (absent features count zero), a feature is selected if any sample selected it, and cell
    names become ``sample:barcode`` so they stay unique."""
    if len(samples) == 1:
        return samples[0]
    names = [
        str(s.obs["sample"].iloc[0]) if "sample" in s.obs else f"s{i}"
        for i, s in enumerate(samples)
    ]
    if len(set(names)) != len(names):
        raise ValueError(f"sample names must be unique, got {names}")
    mods = {}
    for m in MODALITIES:
        parts = []
        for name, sample in zip(names, samples, strict=True):
            adata = sample[m].copy()
            adata.obs_names = pd.Index([f"{name}:{b}" for b in sample.obs_names])
            parts.append(adata)
        combined = ad.concat(parts, join="outer", merge="first", fill_value=0)
        selected = np.zeros(combined.n_vars, bool)
        for adata in parts:
            chosen = adata.var_names[adata.var[SELECTED].to_numpy(bool)]
            selected |= combined.var_names.isin(chosen)
        combined.var[SELECTED] = selected
        mods[m] = combined
    mdata = assemble_multiome(mods["rna"], mods["atac"])
    obs = pd.concat([s.obs for s in samples], axis=0)
    for column in ("sample", "barcode"):
        if column in obs:
            mdata.obs[column] = obs[column].astype(str).to_numpy()
    return mdata
