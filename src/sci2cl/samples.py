"""Combine prepared samples into one MuData for training (see docs/usage.md, several samples).

Genes: the union of the samples' genes (default; a gene a sample lacks counts zero in its cells
but is *uncovered* there) or only those common to all. Peaks: the samples' peak sets are merged
into one set of regions, each sample's peak counts summed into the region holding them (or
recounted from fragments files); a region is uncovered by a sample with no peak in it. Uncovered
features are left out of that sample's reconstruction loss; coverage is kept in
``varm['sci2cl_coverage']`` (features x samples, in ``uns['sci2cl']['combine']['samples']``
order).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from sci2cl.align import SELECTED, name_matrix
from sci2cl.errors import InputError, reading
from sci2cl.io import assemble_multiome
from sci2cl.io.read import TEXT_FILE_ERRORS
from sci2cl.peaks import merge_intervals, overlap_matrix, recount_fragments, var_intervals

COVERAGE = "sci2cl_coverage"
GENES = ("union", "common")


def sample_names(samples: list[md.MuData]) -> list[str]:
    """``obs['sample']`` of each sample (``s<i>`` when absent); must be unique."""
    names = [
        str(s.obs["sample"].iloc[0]) if "sample" in s.obs and s.n_obs else f"s{i}"
        for i, s in enumerate(samples)
    ]
    if len(set(names)) != len(names):
        raise InputError(", ".join(names), "sample names must be unique")
    return names


def _stacked(
    samples: list[md.MuData],
    names: list[str],
    modality: str,
    var: pd.DataFrame,
    mappings: list[sp.csr_matrix],
    recounted: list[sp.csr_matrix] | None = None,
) -> ad.AnnData:
    """One modality of all samples on the features of ``var``: each sample's counts summed by
    its (features x ``var``) 0/1 matrix in ``mappings`` (or its ``recounted`` counts, which
    cover every feature), stacked cell-wise (cells ``sample:barcode``); per-sample coverage in
    ``varm[COVERAGE]``, the samples covering each feature in ``var['n_samples']``, and
    ``var[SELECTED]`` where a feature any sample selected was mapped."""
    parts, coverage, obs = [], [], []
    selected = np.zeros(len(var), bool)
    for i, (name, sample, mapping) in enumerate(zip(names, samples, mappings, strict=True)):
        adata = sample[modality]
        if recounted is None:
            parts.append(sp.csr_matrix(sp.csr_matrix(adata.X, dtype=np.float32) @ mapping))
            coverage.append(np.asarray(mapping.sum(axis=0)).ravel() > 0)
        else:
            parts.append(recounted[i])
            coverage.append(np.ones(len(var), bool))
        if SELECTED in adata.var:
            chosen = adata.var[SELECTED].to_numpy(np.float32)
            selected |= np.asarray(mapping.T @ chosen).ravel() > 0
        obs.append(adata.obs.set_axis(pd.Index([f"{name}:{b}" for b in sample.obs_names])))
    var[SELECTED] = selected
    adata = ad.AnnData(sp.vstack(parts, format="csr"), obs=pd.concat(obs), var=var)
    adata.varm[COVERAGE] = np.stack(coverage, axis=1)
    adata.var["n_samples"] = adata.varm[COVERAGE].sum(axis=1)
    return adata


def _genes(samples: list[md.MuData], names: list[str], genes: str) -> ad.AnnData:
    """Genes of all samples (``union``; a gene absent from a sample is uncovered there) or
    only those every sample has (``common``)."""
    indexes = [pd.Index(s["rna"].var_names.astype(str)) for s in samples]
    keep = indexes[0]
    for index in indexes[1:]:
        keep = keep.union(index, sort=False) if genes == "union" else keep.intersection(index)
    if keep.empty:
        raise InputError(", ".join(names), "the samples share no gene (RNA feature names)")
    var = pd.concat([s["rna"].var for s in samples])
    var = var[~var.index.duplicated()].reindex(keep)
    mappings = [name_matrix(index, keep)[0] for index in indexes]
    return _stacked(samples, names, "rna", var, mappings)


def _merged_peaks(
    samples: list[md.MuData], names: list[str], fragments: list[Path] | None
) -> ad.AnnData:
    """The samples' peaks merged into regions, counts summed into them or recounted from
    ``fragments`` (one file per sample)."""
    intervals = []
    for name, sample in zip(names, samples, strict=True):
        with reading(name, "ATAC peaks without genomic intervals ({})", (ValueError,)):
            intervals.append(var_intervals(sample["atac"].var))
    regions = merge_intervals(intervals)
    recounted = None
    if fragments is not None:
        recounted = []
        for sample, path in zip(samples, fragments, strict=True):
            barcodes = sample.obs.get("barcode", sample.obs_names.to_series())
            # corrupt gzip, malformed lines (pandas: ValueError)
            with reading(path, "unreadable fragments file ({})", TEXT_FILE_ERRORS):
                recounted.append(recount_fragments(path, barcodes.astype(str), regions))
    index = pd.Index(regions.names())
    var = pd.DataFrame({"feature_types": "Peaks", "interval": index}, index=index)
    mappings = [overlap_matrix(peaks, regions) for peaks in intervals]  # a peak: one region
    return _stacked(samples, names, "atac", var, mappings, recounted)


def combine_samples(
    samples: list[md.MuData], fragments: list[Path] | None = None, genes: str = "union"
) -> md.MuData:
    """Stack prepared samples cell-wise: genes by ``genes`` (union or common), merged peaks
    (see module docstring), cell names ``sample:barcode``. One sample without fragments is
    returned as is."""
    if len(samples) == 1 and fragments is None:
        return samples[0]
    if fragments is not None and len(fragments) != len(samples):
        raise InputError(
            ", ".join(map(str, fragments)),
            f"{len(fragments)} fragments file(s) for {len(samples)} sample(s); give one per input",
        )
    names = sample_names(samples)
    if genes not in GENES:
        raise ValueError(f"genes must be one of {GENES}, got {genes!r}")
    rna = _genes(samples, names, genes)
    atac = _merged_peaks(samples, names, fragments)
    mdata = assemble_multiome(rna, atac)
    obs = pd.concat([s.obs for s in samples], axis=0)
    for column in ("sample", "barcode"):
        if column in obs:
            mdata.obs[column] = obs[column].astype(str).to_numpy()
    prepare = dict(samples[0].uns.get("sci2cl", {}).get("prepare", {}))
    mdata.uns["sci2cl"] = {
        "prepare": prepare,
        "combine": {
            "samples": names,
            "genes": genes,
            "n_genes": int(rna.n_vars),
            "n_genes_in_all_samples": int((rna.var["n_samples"] == len(samples)).sum()),
            "n_peaks_per_sample": [int(s["atac"].n_vars) for s in samples],
            "n_peaks_merged": int(atac.n_vars),
            "recounted_from_fragments": fragments is not None,
        },
    }
    return mdata
