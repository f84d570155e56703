"""Build the committed fixtures in tests/data from the real datasets in shared/data.

Run by hand when a fixture must change (tests never read shared/data):

    python tests/make_fixtures.py [SHARED_DATA_DIR]     # default: <repo>/../shared/data

Outputs are deterministic (fixed seed, gzip without timestamps).
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tenx_files import write_tenx_h5, write_tenx_mex

from sci2cl.io.read import TenxMatrix

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SNARE_CELLS = 1500
SNARE_MIN_PEAK_DETECTION = 0.01
SNARE_SEED = 0
LABEL_COLUMNS = ["cluster (remapped)", "Ident"]
SNARE_LIBRARY_SPLIT = {
    "snare_a": ["09A", "09B", "09C", "09D", "09E", "09F"],
    "snare_b": ["09G", "09H", "09I", "09J", "09K", "09L"],
}


def build_pbmc_arc(shared: Path) -> None:
    """ARC-style outs/ (HDF5 v3 + MEX, both feature types) from muon's PBMC multiome subset."""
    source = shared / "pbmc_multiome_muon_testdata"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = mudata.read_h5mu(source / "test_rna_atac.h5mu")
    rna, atac = mdata["rna"], mdata["atac"]
    assert rna.obs_names.equals(atac.obs_names)
    counts = sp.hstack([rna.X, atac.X], format="csr")
    assert np.array_equal(counts.data, np.round(counts.data))
    features = pd.DataFrame(
        {
            "id": np.concatenate([rna.var["gene_ids"], atac.var_names]),
            "name": np.concatenate([rna.var_names, atac.var_names]),
            "feature_type": np.concatenate([rna.var["feature_types"], atac.var["feature_types"]]),
            "genome": np.concatenate([rna.var["genome"], atac.var["genome"]]),
            "interval": np.concatenate([rna.var["interval"], atac.var["interval"]]),
        }
    ).astype(str)
    matrix = TenxMatrix(counts.astype(np.int32), rna.obs_names.to_numpy(dtype=str), features)
    outs = _fresh(DATA / "pbmc_arc") / "outs"
    outs.mkdir()
    write_tenx_h5(outs / "filtered_feature_bc_matrix.h5", matrix)
    write_tenx_mex(outs / "filtered_feature_bc_matrix", matrix)
    shutil.copy(source / "LICENSE.upstream", DATA / "pbmc_arc" / "LICENSE.upstream")


def stratified_sample(labels: pd.Series, n: int, seed: int) -> np.ndarray:
    """Positions of ``n`` cells drawn per label in proportion (largest remainder), sorted."""
    sizes = labels.value_counts(sort=False)
    quota = sizes / sizes.sum() * n
    take = np.floor(quota).astype(int)
    remainder = (quota - take).sort_values(ascending=False, kind="stable")
    take[remainder.index[: n - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    codes = labels.to_numpy()
    chosen = [
        rng.choice(np.flatnonzero(codes == label), take[label], replace=False)
        for label in sizes.index
    ]
    return np.sort(np.concatenate(chosen))


def build_snare_subset(shared: Path) -> None:
    """A labelled, stratified 1,500-cell SNARE-seq subset (all genes, peaks in >= 1% of cells)."""
    source = shared / "snareseq_mouse_cortex_scmomat"
    meta = pd.read_csv(source / "meta_c1.csv", index_col=0)
    genes = pd.read_csv(source / "genes.txt", header=None)[0].astype(str).to_numpy()
    regions = pd.read_csv(source / "regions.txt", header=None)[0].astype(str)
    cells = stratified_sample(meta["cluster (remapped)"], SNARE_CELLS, SNARE_SEED)
    rna = sp.load_npz(source / "GxC1.npz").T.tocsr()[cells].astype(np.int32)
    atac = sp.load_npz(source / "RxC1.npz").T.tocsr()[cells].astype(np.int32)
    detected = np.bincount(atac.indices, minlength=atac.shape[1]) / len(cells)
    peaks = np.flatnonzero(detected >= SNARE_MIN_PEAK_DETECTION)
    chrom_start_end = regions.iloc[peaks].str.rsplit("_", n=2, expand=True)
    peak_ids = (chrom_start_end[0] + ":" + chrom_start_end[1] + "-" + chrom_start_end[2]).to_numpy()
    barcodes = meta.index[cells].astype(str)
    obs = pd.DataFrame(index=barcodes)
    rna_var = pd.DataFrame({"gene_name": genes, "feature_types": "Gene Expression"}, index=genes)
    atac_var = pd.DataFrame({"interval": peak_ids, "feature_types": "Peaks"}, index=peak_ids)
    out = _fresh(DATA / "snare_subset")
    with mudata.set_options(pull_on_update=False):
        mdata = mudata.MuData(
            {
                "rna": ad.AnnData(rna, obs=obs.copy(), var=rna_var),
                "atac": ad.AnnData(atac[:, peaks], obs=obs.copy(), var=atac_var),
            }
        )
        mdata.write_h5mu(out / "snare_subset.h5mu", compression="gzip")
    labels = meta.iloc[cells][LABEL_COLUMNS]
    labels.index.name = "barcode"
    labels.to_csv(out / "labels.csv")
    shutil.copy(source / "LICENSE.upstream", out / "LICENSE.upstream")


def build_snare_libraries() -> None:
    """The SNARE subset split by library (09A-09F, 09G-09L) into two samples, each with its own
    peak set (boundaries moved by up to a quarter of the width, ~10% of peaks dropped), as
    Cell Ranger ARC's per-sample peak calling gives: multi-sample fixtures for the pipeline."""
    rng = np.random.default_rng(SNARE_SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = mudata.read_h5mu(DATA / "snare_subset" / "snare_subset.h5mu")
    library = mdata.obs_names.str.slice(0, 3)
    out = _fresh(DATA / "snare_libraries")
    for name, libraries in SNARE_LIBRARY_SPLIT.items():
        cells = np.flatnonzero(library.isin(libraries))
        rna, atac = mdata["rna"][cells].copy(), mdata["atac"][cells].copy()
        parts = atac.var["interval"].str.extract(r"^(.+):(\d+)-(\d+)$")
        start, end = parts[1].astype(np.int64).to_numpy(), parts[2].astype(np.int64).to_numpy()
        shift = np.maximum((end - start) // 4, 1)
        start = np.maximum(start + rng.integers(-shift, shift + 1), 0)
        end = np.maximum(end + rng.integers(-shift, shift + 1), start + 10)
        names = parts[0] + ":" + start.astype(str) + "-" + end.astype(str)
        keep = rng.random(len(names)) >= 0.1
        atac.var_names = pd.Index(names.to_numpy(), name=None)
        atac.var["interval"] = names.to_numpy()
        with mudata.set_options(pull_on_update=False):
            sample = mudata.MuData({"rna": rna, "atac": atac[:, keep].copy()})
            sample.write_h5mu(out / f"{name}.h5mu", compression="gzip")


def build_edge_cases(shared: Path) -> None:
    """Copies of TENxIO's one-modality 10x files (GEX-only and Peaks-only h5, empty MEX)."""
    source = shared / "tenxio_arc_format_fixtures"
    out = DATA / "edge_cases"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("pbmc_granulocyte_ff_bc_ex.h5", "10k_pbmc_ATACv2_f_bc_ex.h5"):
        shutil.copy(source / name, out / name)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(source / "pbmc_granulocyte_sorted_3k_ff_bc_ex_matrix.tar.gz") as tar:
            tar.extractall(tmp, filter="data")
        mex = next(Path(tmp).rglob("filtered_feature_bc_matrix"))
        shutil.rmtree(out / "gex_only_empty_mex", ignore_errors=True)
        shutil.copytree(mex, out / "gex_only_empty_mex")
    # LICENSE.upstream is kept as committed: TENxIO ships no licence file to copy.


def _fresh(folder: Path) -> Path:
    """Empty ``folder`` of generated content, keeping its hand-written README.md."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if path.name != "README.md":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return folder


def main(shared: Path) -> None:
    build_pbmc_arc(shared)
    build_snare_subset(shared)
    build_snare_libraries()
    build_edge_cases(shared)
    for path in sorted(DATA.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:>9}  {path.relative_to(DATA)}")


if __name__ == "__main__":
    default = HERE.parent.parent / "shared" / "data"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
