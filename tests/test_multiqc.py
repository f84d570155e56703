"""`sci2cl multiqc`: MultiQC custom content from real prepare / train outputs."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mudata as md  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import PBMC_OUTS, SNARE_H5MU  # noqa: E402
from helpers import SMALL_CLI_ARGS  # noqa: E402

from sci2cl.cli import main  # noqa: E402


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def pbmc(tmp_path_factory):
    """prepare + a short train of the PBMC ARC fixture, and a UMAP PNG."""
    out = tmp_path_factory.mktemp("pbmc")
    for args in (
        ("prepare", "--input", PBMC_OUTS, "--output-prefix", out / "pbmc", "--sample", "pbmc"),
        ("train", "--input", out / "pbmc.prepared.h5mu", "--output-prefix", out / "pbmc"),
    ):
        extra = (*SMALL_CLI_ARGS, "--no-figures") if args[0] == "train" else ()
        result = invoke(*args, *extra)
        assert result.exit_code == 0, result.output
    plt.imsave(out / "pbmc.umap.png", np.eye(8))
    return out


def test_multiqc_content_matches_the_outputs(pbmc, tmp_path):
    files = [pbmc / f"pbmc{s}" for s in (".prepared.h5mu", ".h5mu", ".history.csv", ".umap.png")]
    result = invoke("multiqc", *files, "--outdir", tmp_path / "mqc")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "mqc").iterdir())
    assert written == [
        "sci2cl_embedding_mqc.json",
        "sci2cl_pbmc_umap_mqc.png",
        "sci2cl_prepare_cells_mqc.json",
        "sci2cl_prepare_mqc.json",
        "sci2cl_training_mqc.json",
    ]
    load = lambda name: json.loads((tmp_path / "mqc" / f"sci2cl_{name}_mqc.json").read_text())  # noqa: E731

    prepared = md.read_h5mu(pbmc / "pbmc.prepared.h5mu")
    qc = load("prepare")["data"]["pbmc"]
    assert qc["n_cells_in"] == 1000 and qc["n_cells_out"] == prepared.n_obs < 1000
    assert qc["n_genes_out"] == prepared["rna"].n_vars
    assert qc["n_peaks_out"] == prepared["atac"].n_vars
    cells = load("prepare_cells")["data"]["pbmc"]
    assert cells["kept"] == prepared.n_obs
    assert sum(v for k, v in cells.items() if k.startswith("removed")) >= 1000 - prepared.n_obs

    history = pd.read_csv(pbmc / "pbmc.history.csv")
    trained = md.read_h5mu(pbmc / "pbmc.h5mu")
    embedding = load("embedding")["data"]["pbmc"]
    assert embedding["cells"] == trained.n_obs
    assert embedding["dimensions"] == trained.obsm["X_sci2cl"].shape[1]
    assert embedding["samples"] == 1 and embedding["epochs_run"] == len(history)
    if "sci2cl_leiden" in trained.obs:
        assert embedding["leiden_clusters"] == trained.obs["sci2cl_leiden"].nunique()
    else:
        assert "leiden_clusters" not in embedding

    curves = load("training")["data"]
    assert sorted(curves) == ["pbmc (train)", "pbmc (val)"]
    assert list(curves["pbmc (train)"].values()) == pytest.approx(list(history["train_loss"]))
    assert [int(e) for e in curves["pbmc (val)"]] == list(history["epoch"])


def test_multiqc_names_a_file_it_cannot_use(tmp_path):
    # a raw h5mu, not one sci2cl trained: one line naming the file, exit 2, nothing written
    result = invoke("multiqc", SNARE_H5MU, "--outdir", tmp_path / "mqc")
    assert result.exit_code == 2, result.output
    assert f"{SNARE_H5MU}: no obsm['X_sci2cl']" in result.output
    assert not (tmp_path / "mqc").exists()
