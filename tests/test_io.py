"""Readers (every supported layout gives the same MuData) and atomic writers."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from conftest import PBMC_H5, PBMC_MEX, PBMC_OUTS

from sci2cl.errors import InputError, Sci2clWarning
from sci2cl.io import (
    default_sample_name,
    read_multiome,
    staged_outputs,
    write_h5mu,
    write_parquet,
)
from sci2cl.io.read import assemble_multiome, read_tenx_h5

N_CELLS, N_GENES, N_PEAKS = 1000, 45, 174


def _staged_nested(tmp: Path) -> Path:
    """nf-core CELLRANGERARC_COUNT style: <task>/<sample>/outs/** with raw matrices beside."""
    outs = tmp / "task" / "PBMC_1" / "outs"
    shutil.copytree(PBMC_OUTS, outs)
    shutil.copytree(PBMC_MEX, outs / "raw_feature_bc_matrix")
    shutil.copy(PBMC_H5, outs / "raw_feature_bc_matrix.h5")
    return tmp / "task"


def _staged_flat(tmp: Path) -> Path:
    """Files symlinked flat into one task folder, as Nextflow stages a file list."""
    folder = tmp / "flat"
    folder.mkdir()
    for name in ("filtered_feature_bc_matrix.h5", "raw_feature_bc_matrix.h5"):
        os.symlink(PBMC_H5, folder / name)
    return folder


def _h5mu(tmp: Path) -> Path:
    """An .h5mu as muon writes it: gene symbols as rna var_names, ids in ``gene_ids``."""
    mdata = read_multiome(PBMC_H5)
    rna = mdata["rna"].copy()
    rna.var = pd.DataFrame(
        {"gene_ids": rna.var_names, **rna.var[["feature_types", "interval"]].to_dict("list")},
        index=rna.var["gene_name"].to_numpy(),
    )
    atac = mdata["atac"].copy()
    atac.var = pd.DataFrame({"gene_ids": atac.var_names}, index=atac.var_names)
    path = tmp / "pbmc.h5mu"
    write_h5mu(assemble_multiome(rna, atac), path)
    return path


def _mex_in_folder(tmp: Path) -> Path:
    folder = tmp / "sample_mex"
    shutil.copytree(PBMC_MEX, folder)
    return folder


LAYOUTS = {
    "arc_outs": lambda tmp: PBMC_OUTS,
    "bare_h5": lambda tmp: PBMC_H5,
    "mex_folder": lambda tmp: PBMC_MEX,
    "mex_any_name": _mex_in_folder,
    "matrix_mtx_file": lambda tmp: PBMC_MEX / "matrix.mtx.gz",
    "h5mu": _h5mu,
    "staged_nested": _staged_nested,
    "staged_flat": _staged_flat,
}


@pytest.fixture(scope="module")
def reference() -> mudata.MuData:
    return read_multiome(PBMC_H5)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_reads_the_same(layout, tmp_path, reference):
    mdata = read_multiome(LAYOUTS[layout](tmp_path))
    assert set(mdata.mod) == {"rna", "atac"}
    assert mdata["rna"].shape == (N_CELLS, N_GENES)
    assert mdata["atac"].shape == (N_CELLS, N_PEAKS)
    for mod in ("rna", "atac"):
        got, want = mdata[mod], reference[mod]
        assert isinstance(got.X, sp.csr_matrix) and got.X.dtype == np.float32
        assert (got.X != want.X).nnz == 0
        assert got.obs_names.equals(want.obs_names)
        assert got.var_names.equals(want.var_names)
        assert (got.var["feature_types"] == want.var["feature_types"]).all()
        assert (got.var["interval"] == want.var["interval"]).all()
    assert (mdata["rna"].var["gene_name"] == reference["rna"].var["gene_name"]).all()


def test_features_and_barcodes_match_the_10x_file(reference):
    raw = read_tenx_h5(PBMC_H5)
    assert list(reference.obs_names) == list(raw.barcodes)  # input order, not sorted
    rna, atac = reference["rna"], reference["atac"]
    assert rna.var_names[0].startswith("ENSG") and rna.var["gene_name"].iloc[0] == "CDC14A"
    assert set(rna.var["feature_types"]) == {"Gene Expression"}
    assert set(atac.var["feature_types"]) == {"Peaks"}
    assert (atac.var_names == atac.var["interval"]).all()
    assert atac.var_names[0] == "chr1:100350982-100353664"
    assert reference.uns["files"]["input"] == str(PBMC_H5)


def _tiny(names: list[str], values: list[float], var: list[str]) -> ad.AnnData:
    x = sp.csr_matrix(np.array(values, dtype=np.float32).reshape(len(names), len(var)))
    return ad.AnnData(x, obs=pd.DataFrame(index=names), var=pd.DataFrame(index=var))


def test_h5mu_keeps_shared_cells_in_rna_order_and_prefers_counts_layer(tmp_path):
    rna = _tiny(["a", "b", "c", "d"], [1, 2, 3, 4, 5, 6, 7, 8], ["g1", "g2"])
    rna.layers["counts"] = rna.X.copy()
    rna.X = rna.X * 0.5  # normalised values in X must be ignored
    atac = _tiny(["d", "x", "c", "a"], [40, 0, 1, 10, 30, 3, 10, 1], ["chr1_10_20", "chr2_5_9"])
    path = tmp_path / "s.h5mu"
    write_h5mu(assemble_multiome(rna, atac), path)
    partial = "3 cells have both modalities and are kept; dropped 1 of 4 'rna' and 1 of 4 'atac'"
    with pytest.warns(Sci2clWarning, match=partial):
        mdata = read_multiome(path)
    assert list(mdata.obs_names) == ["a", "c", "d"]
    assert mdata["rna"].X.toarray().tolist() == [[1, 2], [5, 6], [7, 8]]
    assert mdata["atac"].X.toarray().tolist() == [[10, 1], [30, 3], [40, 0]]
    assert list(mdata["atac"].var["interval"]) == ["chr1:10-20", "chr2:5-9"]


def test_three_column_mex_derives_peak_intervals_from_ids(tmp_path, reference):
    folder = tmp_path / "cr_v3"
    shutil.copytree(PBMC_MEX, folder)
    features = pd.read_csv(folder / "features.tsv.gz", sep="\t", header=None)
    features.iloc[:, :3].to_csv(folder / "features.tsv.gz", sep="\t", header=False, index=False)
    mdata = read_multiome(folder)
    assert (mdata["atac"].var["interval"] == reference["atac"].var["interval"]).all()
    assert mdata["rna"].var_names.equals(reference["rna"].var_names)


@pytest.mark.filterwarnings("ignore:.*names are not unique")
def test_duplicate_feature_names_are_made_unique(tmp_path):
    rna = _tiny(["a", "b"], [1, 2, 3, 4], ["g", "g"])
    atac = _tiny(["a", "b"], [1, 0, 0, 1], ["p", "p"])
    path = tmp_path / "dup.h5mu"
    write_h5mu(assemble_multiome(rna, atac), path)
    mdata = read_multiome(path)
    assert mdata["rna"].var_names.is_unique and mdata["atac"].var_names.is_unique


def test_arc_extras_are_attached(tmp_path, reference):
    outs = tmp_path / "S1" / "outs"
    shutil.copytree(PBMC_OUTS, outs)
    barcodes = list(reference.obs_names[:3]) + ["NOT_A_CELL-1"]
    pd.DataFrame(
        {"barcode": barcodes, "is_cell": [1, 1, 1, 0], "gex_umis_count": [5, 6, 7, 0]}
    ).to_csv(outs / "per_barcode_metrics.csv", index=False)
    with gzip.open(outs / "atac_fragments.tsv.gz", "wt") as handle:
        handle.write(f"chr1\t10\t20\t{barcodes[0]}\t1\n")
    mdata = read_multiome(outs)
    assert mdata.obs["arc_gex_umis_count"].iloc[:3].tolist() == [5, 6, 7]
    assert mdata.obs["arc_is_cell"].iloc[3:].isna().all()
    fragments = mdata.uns["files"]["fragments"]
    assert Path(fragments).is_absolute() and Path(fragments).name == "atac_fragments.tsv.gz"


def test_ambiguous_and_raw_only_folders_are_refused(tmp_path):
    for sample in ("A", "B"):
        shutil.copytree(PBMC_OUTS, tmp_path / "two" / sample / "outs")
    with pytest.raises(InputError, match=r"ambiguous: 4 candidate matrices \(A/outs/"):
        read_multiome(tmp_path / "two")
    mixed = tmp_path / "mixed"
    shutil.copytree(PBMC_OUTS, mixed / "outs")
    (mixed / "old.h5mu").write_bytes(b"")
    with pytest.raises(InputError, match="ambiguous"):
        read_multiome(mixed)
    raw_only = tmp_path / "raw" / "outs"
    raw_only.mkdir(parents=True)
    shutil.copy(PBMC_H5, raw_only / "raw_feature_bc_matrix.h5")
    with pytest.raises(InputError, match="only raw_feature_bc_matrix"):
        read_multiome(tmp_path / "raw")


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("runs/PBMC_1/outs", "PBMC_1"),
        ("runs/PBMC_1/outs/filtered_feature_bc_matrix.h5", "PBMC_1"),
        ("runs/PBMC_1/outs/filtered_feature_bc_matrix", "PBMC_1"),
        ("data/donor7.h5mu", "donor7"),
        ("data/lib3.h5", "lib3"),
        ("data/lib4_mex", "lib4_mex"),
    ],
)
def test_default_sample_name(path, name):
    assert default_sample_name(path) == name


# --- writers -------------------------------------------------------------------------------


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_staged_outputs_renames_all_on_success(tmp_path):
    finals = {"a": tmp_path / "new" / "x.txt", "b": tmp_path / "y.txt"}
    with staged_outputs(finals) as temps:
        assert temps["a"].name.startswith(".x.txt.tmp-") and temps["a"].parent == finals["a"].parent
        for temp in temps.values():
            temp.write_text("done")
    assert _listing(tmp_path) == ["new", "new/x.txt", "y.txt"]


def test_staged_outputs_leaves_nothing_on_error(tmp_path):
    finals = {"a": tmp_path / "deep" / "er" / "x.txt", "b": tmp_path / "y.txt"}
    with pytest.raises(RuntimeError, match="boom"), staged_outputs(finals) as temps:
        temps["a"].write_text("half")
        temps["b"].write_text("half")
        raise RuntimeError("boom")
    assert _listing(tmp_path) == []


def test_staged_outputs_requires_every_output(tmp_path):
    finals = {"a": tmp_path / "x.txt", "b": tmp_path / "y.txt"}
    with pytest.raises(RuntimeError, match="y.txt"), staged_outputs(finals) as temps:
        temps["a"].write_text("only one")
    assert _listing(tmp_path) == []


def test_write_h5mu_serialises_numpy_and_none(tmp_path, reference):
    mdata = read_multiome(PBMC_H5)
    mdata.uns["sci2cl"] = {
        "n": np.int64(3),
        "pct": np.float32(0.5),
        "off": None,
        "path": Path("/x"),
        "pair": (1, 2),
        "name": np.str_("s"),
    }
    path = tmp_path / "o.h5mu"
    write_h5mu(mdata, path)
    with mudata.set_options(pull_on_update=False):
        back = mudata.read_h5mu(path)
    assert back.uns["sci2cl"]["n"] == 3 and back.uns["sci2cl"]["path"] == "/x"
    assert list(back.uns["sci2cl"]["pair"]) == [1, 2]
    assert (back["rna"].X != reference["rna"].X).nnz == 0


def test_parquet_round_trip_with_metadata(tmp_path):
    frame = pd.DataFrame({"barcode": ["a", "b"], "sci2cl_0": np.array([0.5, 1.5], np.float32)})
    path = tmp_path / "e.parquet"
    write_parquet(frame, path, {"sci2cl_version": "0.1.0", "params": {"epochs": 3}})
    metadata = pq.read_schema(path).metadata
    assert metadata[b"sci2cl_version"] == b"0.1.0" and metadata[b"params"] == b'{"epochs": 3}'
    back = pd.read_parquet(path)
    assert back.equals(frame) and back["sci2cl_0"].dtype == np.float32
