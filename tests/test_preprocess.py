"""QC filters, feature selection and the prepared MuData's contents."""

from __future__ import annotations

import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from sci2cl.errors import InputError
from sci2cl.io import write_h5mu
from sci2cl.io.read import assemble_multiome
from sci2cl.preprocess import (
    SELECTED,
    PrepareConfig,
    highly_variable_genes,
    loess_trend,
    prepare,
)


def _identical(a: sp.spmatrix, b: sp.spmatrix) -> bool:
    return a.shape == b.shape and (a != b).nnz == 0


def _counts(mdata: mudata.MuData, mod: str) -> np.ndarray:
    return np.asarray(mdata[mod].X.sum(axis=1)).ravel()


def test_defaults_keep_all_snare_cells_and_mark_features(snare_mdata):
    prepared, report = prepare(snare_mdata, PrepareConfig(), "snare")
    assert prepared.n_obs == snare_mdata.n_obs == 1500
    rna, atac = prepared["rna"], prepared["atac"]
    assert rna.var[SELECTED].dtype == bool and atac.var[SELECTED].dtype == bool
    assert rna.var[SELECTED].all()  # fewer genes than n_top_genes: all selected
    assert report.n_genes_selected == rna.n_vars and report.n_peaks_selected == atac.n_vars
    assert (rna.var["n_cells"] >= 3).all() and (atac.var["n_cells"] >= 3).all()
    lines = report.summary_lines()
    assert lines[0].startswith("sample snare: 1500 cells -> 1500") and len(lines) == 3


def test_raw_counts_are_kept_for_kept_cells_and_features(snare_mdata):
    config = PrepareConfig(min_rna_counts=300, min_atac_counts=60, n_top_genes=200)
    prepared, _ = prepare(snare_mdata, config, "s")
    for mod in ("rna", "atac"):
        got, source = prepared[mod], snare_mdata[mod]
        assert isinstance(got.X, sp.csr_matrix) and got.X.dtype == np.float32
        expected = source[got.obs_names, got.var_names].X
        assert _identical(got.X, expected)
    assert list(prepared.obs["barcode"]) == list(prepared.obs_names)
    assert (prepared.obs["sample"] == "s").all()


def test_cell_filters_and_report_numbers(snare_mdata):
    rna_total, atac_total = _counts(snare_mdata, "rna"), _counts(snare_mdata, "atac")
    config = PrepareConfig(min_rna_counts=300, max_rna_counts=900, min_atac_counts=60)
    prepared, report = prepare(snare_mdata, config, "s")
    keep = (rna_total >= 300) & (rna_total <= 900) & (atac_total >= 60)
    assert prepared.n_obs == keep.sum() < 1500
    assert list(prepared.obs_names) == list(snare_mdata.obs_names[keep])  # order preserved
    steps = {s.name: (s.before, s.after) for s in report.cells}
    assert steps["input"] == (1500, 1500)
    assert steps["min_rna_counts"] == (1500, (rna_total >= 300).sum())
    assert steps["min_atac_counts"][1] == keep.sum()
    qc = prepared["rna"].obs
    assert qc["total_counts"].between(300, 900).all()
    assert np.array_equal(qc["total_counts"], rna_total[keep])
    assert (prepared["atac"].obs["total_counts"] >= 60).all()
    record = prepared.uns["sci2cl"]["prepare"]
    assert record["config"]["min_rna_counts"] == 300 and record["sample"] == "s"
    assert record["n_cells_in"] == 1500 and record["n_cells_out"] == keep.sum()
    assert sum(record["cells_removed"].values()) == 1500 - keep.sum()


def test_selection_sizes_and_peak_ranking(snare_mdata):
    prepared, report = prepare(snare_mdata, PrepareConfig(n_top_genes=300, n_top_peaks=500), "s")
    assert prepared["rna"].var[SELECTED].sum() == report.n_genes_selected == 300
    atac = prepared["atac"].var
    assert atac[SELECTED].sum() == 500
    assert atac.loc[atac[SELECTED], "n_cells"].min() >= atac.loc[~atac[SELECTED], "n_cells"].max()


def test_feature_filters_count_kept_cells_only(snare_mdata):
    prepared, report = prepare(snare_mdata, PrepareConfig(min_cells_per_peak=60), "s")
    detected = np.asarray((snare_mdata["atac"].X > 0).sum(axis=0)).ravel()
    assert prepared["atac"].n_vars == (detected >= 60).sum()
    assert report.peaks[-1].after == prepared["atac"].n_vars


def test_input_is_not_modified(snare_mdata):
    before_x = snare_mdata["rna"].X.copy()
    before_cols = list(snare_mdata["rna"].obs.columns), list(snare_mdata["rna"].var.columns)
    prepare(snare_mdata, PrepareConfig(min_rna_counts=300, n_top_genes=100), "s")
    assert _identical(snare_mdata["rna"].X, before_x)
    assert (list(snare_mdata["rna"].obs.columns), list(snare_mdata["rna"].var.columns)) == (
        before_cols
    )
    assert snare_mdata.n_obs == 1500


def _mito_mdata() -> mudata.MuData:
    """4 cells; genes MT-CO1, mt-Nd1, ACTB; cell 3 is 50% mitochondrial."""
    rna = np.array([[1, 0, 99], [0, 2, 98], [50, 0, 50], [5, 5, 90]], dtype=np.float32)
    atac = np.array([[9, 1], [8, 2], [7, 3], [6, 4]], dtype=np.float32)
    cells = pd.DataFrame(index=[f"c{i}" for i in range(4)])
    return assemble_multiome(
        AnnData(
            sp.csr_matrix(rna),
            obs=cells.copy(),
            var=pd.DataFrame({"gene_name": ["MT-CO1", "mt-Nd1", "ACTB"]}, index=["g1", "g2", "g3"]),
        ),
        AnnData(sp.csr_matrix(atac), obs=cells.copy(), var=pd.DataFrame(index=["p1", "p2"])),
    )


def test_mito_percentage_and_filter():
    config = PrepareConfig(min_cells_per_gene=0, min_cells_per_peak=0)
    prepared, report = prepare(_mito_mdata(), config, "m")
    assert list(prepared.obs_names) == ["c0", "c1", "c3"]
    assert np.allclose(prepared["rna"].obs["pct_mito"], [1.0, 2.0, 10.0])
    assert report.n_mito_genes == 2
    relaxed, _ = prepare(
        _mito_mdata(),
        PrepareConfig(max_mito_pct=None, min_cells_per_gene=0, min_cells_per_peak=0),
        "m",
    )
    assert relaxed.n_obs == 4


def test_everything_filtered_names_the_input(pbmc_mdata):
    with pytest.raises(InputError, match=r"no cells pass QC \(min_rna_counts=100000 left 0"):
        prepare(pbmc_mdata, PrepareConfig(min_rna_counts=100000), "p")
    with pytest.raises(InputError, match="filtered_feature_bc_matrix.h5: no genes pass"):
        prepare(pbmc_mdata, PrepareConfig(min_cells_per_gene=5000), "p")


def test_invalid_config_is_refused():
    with pytest.raises(ValueError, match="min_rna_counts"):
        PrepareConfig(min_rna_counts=-1)
    with pytest.raises(ValueError, match="max_mito_pct"):
        PrepareConfig(max_mito_pct=150)


def test_prepared_mudata_writes_and_reads_back(tmp_path, pbmc_mdata):
    prepared, _ = prepare(pbmc_mdata, PrepareConfig(), "pbmc")
    path = tmp_path / "p.h5mu"
    write_h5mu(prepared, path)
    with mudata.set_options(pull_on_update=False):
        back = mudata.read_h5mu(path)
    assert back.uns["sci2cl"]["prepare"]["config"]["max_rna_counts"] is None
    assert list(back.obs["sample"].unique()) == ["pbmc"]
    assert back["atac"].var[SELECTED].dtype == bool


def test_loess_reproduces_a_quadratic():
    x = np.linspace(-2, 3, 500)
    y = 1.5 - 0.5 * x + 0.25 * x**2
    assert np.allclose(loess_trend(x, y, span=0.3), y, atol=1e-8)


def test_hvg_finds_overdispersed_genes():
    rng = np.random.default_rng(0)
    n_cells, n_genes = 2000, 300
    means = np.exp(rng.uniform(-2, 2, n_genes))
    counts = rng.poisson(means, size=(n_cells, n_genes)).astype(np.float32)
    noisy = np.arange(0, n_genes, 30)  # 10 genes with gamma-poisson (overdispersed) counts
    counts[:, noisy] = rng.poisson(rng.gamma(0.3, means[noisy] / 0.3, size=(n_cells, 10)))
    chosen = highly_variable_genes(sp.csr_matrix(counts), 10)
    assert set(np.flatnonzero(chosen)) == set(noisy)
    assert highly_variable_genes(sp.csr_matrix(counts), 1000).all()
