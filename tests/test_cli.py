"""End-to-end CLI on the committed real fixtures: run, train, embed, evaluate."""

from __future__ import annotations

import json

import mudata as md
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from conftest import PBMC_OUTS, SNARE_H5MU, SNARE_LABELS
from helpers import SMALL_CLI_ARGS
from test_bad_input import CASES, _assert_clean_failure

from sci2cl import __version__
from sci2cl.cli import main

OUTPUTS = (".embeddings.parquet", ".h5mu", ".model.pt", ".history.csv", ".umap.png", ".losses.png")


def invoke(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + str(result.exception)
    return result


@pytest.fixture(scope="module")
def snare_run(tmp_path_factory):
    """prepare + train on the labelled SNARE subset once for the module."""
    out = tmp_path_factory.mktemp("snare")
    invoke("prepare", "--input", SNARE_H5MU, "--output-prefix", out / "snare", "--sample", "snare")
    result = invoke(
        "train",
        "--input",
        out / "snare.prepared.h5mu",
        "--output-prefix",
        out / "snare",
        *SMALL_CLI_ARGS,
    )
    return out, result


def test_version_and_help():
    assert (
        CliRunner().invoke(main, ["--version"]).output.strip() == f"sci2cl, version {__version__}"
    )
    for command in ("prepare", "train", "embed", "evaluate", "run"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "--input" in result.output


def test_train_writes_every_output(snare_run):
    out, result = snare_run
    for suffix in OUTPUTS:
        assert (out / f"snare{suffix}").stat().st_size > 0, suffix
    assert "trained 3 epochs on 1500 cells" in result.stderr
    assert "best validation loss" in result.stderr
    table = pd.read_parquet(out / "snare.embeddings.parquet")
    # joint = the two cross-attended streams side by side: 2 x latent_dim columns
    assert list(table.columns) == ["barcode", "sample"] + [f"sci2cl_{i}" for i in range(16)]
    assert len(table) == 1500 and table["barcode"].is_unique and set(table["sample"]) == {"snare"}
    assert all(table[f"sci2cl_{i}"].dtype == np.float32 for i in range(16))
    meta = pq.read_schema(out / "snare.embeddings.parquet").metadata
    params = json.loads(meta[b"sci2cl_params"])
    assert meta[b"sci2cl_version"].decode() == __version__
    assert params["model"]["latent_dim"] == 8 and params["train"]["max_epochs"] == 3
    check = params["fusion_check"]  # on by default; its verdict is in the summary line too
    assert check["tested"]
    verdict = "kept" if check["residual_kept"] else "dropped"
    assert f"cross-attention residual {verdict} (held-out MOM loss" in result.stderr
    assert (check["held_out_mom"] < check["chance"]) == check["residual_kept"]
    mdata = md.read_h5mu(out / "snare.h5mu")
    assert set(mdata.mod) == {"rna", "atac"}
    assert mdata.obsm["X_sci2cl"].shape == (1500, 16)
    for key in ("X_sci2cl_rna", "X_sci2cl_atac"):
        assert mdata.obsm[key].shape == (1500, 8)
    np.testing.assert_array_equal(mdata.obsm["X_sci2cl"], table.iloc[:, 2:].to_numpy())
    assert "sci2cl_selected" in mdata["atac"].var
    prepared = md.read_h5mu(out / "snare.prepared.h5mu")
    assert float(mdata["rna"].X.sum()) == float(prepared["rna"].X.sum()), "raw counts kept"
    assert len(mdata.uns["sci2cl"]["history"]["epoch"]) == 3
    history = pd.read_csv(out / "snare.history.csv")
    assert {"train_loss", "val_loss", "train_moc", "val_mom"} <= set(history.columns)
    payload = torch.load(out / "snare.model.pt", weights_only=True)
    config = json.loads(payload["config"])
    assert payload["format"] == "sci2cl-model/3" and config["model_config"]["latent_dim"] == 8


def test_embed_reproduces_training_embeddings(snare_run):
    out, _ = snare_run
    for source in (out / "snare.prepared.h5mu", SNARE_H5MU):  # prepared, then raw input
        invoke(
            "embed",
            "--model",
            out / "snare.model.pt",
            "--input",
            source,
            "--output-prefix",
            out / "again",
        )
        a = pd.read_parquet(out / "snare.embeddings.parquet")
        b = pd.read_parquet(out / "again.embeddings.parquet")
        assert a["barcode"].tolist() == b["barcode"].tolist()
        np.testing.assert_allclose(a.iloc[:, 2:], b.iloc[:, 2:], rtol=1e-4, atol=1e-5)


def test_embed_with_missing_features_warns_and_no_overlap_fails(snare_run, tmp_path):
    out, _ = snare_run
    mdata = md.read_h5mu(out / "snare.prepared.h5mu")
    drop = mdata["rna"].var_names[:10]
    rna = mdata["rna"][:, ~mdata["rna"].var_names.isin(drop)].copy()
    partial = md.MuData({"rna": rna, "atac": mdata["atac"].copy()})
    partial.write(tmp_path / "partial.h5mu")
    result = invoke(
        "embed",
        "--model",
        out / "snare.model.pt",
        "--input",
        tmp_path / "partial.h5mu",
        "--output-prefix",
        tmp_path / "p",
    )
    assert "warning: 10 of 1581 model rna features absent" in result.stderr
    bad = CliRunner().invoke(
        main,
        [
            "embed",
            "--model",
            str(out / "snare.model.pt"),
            "--input",
            str(PBMC_OUTS),
            "--output-prefix",
            str(tmp_path / "q" / "x"),
        ],
    )
    _assert_clean_failure(bad, PBMC_OUTS, "no rna feature of the model", tmp_path / "q")


def test_evaluate_reports_all_metrics(snare_run):
    out, _ = snare_run
    for source in ("snare.embeddings.parquet", "snare.h5mu"):
        invoke(
            "evaluate",
            "--input",
            out / source,
            "--labels",
            SNARE_LABELS,
            "--label-column",
            "cluster (remapped)",
            "--exclude",
            "Mis",
            "--output",
            out / "metrics.json",
            "--no-paper-protocol" if source.endswith("h5mu") else "--paper-protocol",
        )
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n_labels"] == 14 and metrics["n_cells"] == 1337
        for key in ("leiden_nmi", "leiden_ari", "kmeans_nmi", "kmeans_ari"):
            assert 0.0 < metrics[key] <= 1.0, key
    assert "umap_kmeans_nmi" not in metrics  # --no-paper-protocol on the h5mu round


def test_run_on_arc_outs_folder(tmp_path):
    result = invoke(
        "run",
        "--input",
        PBMC_OUTS,
        "--output-prefix",
        tmp_path / "pbmc",
        "--no-figures",
        *SMALL_CLI_ARGS,
    )
    table = pd.read_parquet(tmp_path / "pbmc.embeddings.parquet")
    assert len(table) == 937 and set(table["sample"]) == {"pbmc_arc"}
    assert "sample pbmc_arc: 1000 cells -> 937" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"pbmc{s}" for s in OUTPUTS[:4])


@pytest.mark.parametrize("case", ["missing_path", "truncated_h5", "only_rna_h5", "nan"])
def test_run_bad_input_fails_cleanly(case, tmp_path):
    build, problem = CASES[case]
    source = build(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["run", "--input", str(source), "--output-prefix", str(out / "x"), *SMALL_CLI_ARGS]
    )
    _assert_clean_failure(result, source, problem, out)


def test_train_rejects_unprepared_input(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["train", "--input", str(PBMC_OUTS), "--output-prefix", str(out / "x"), *SMALL_CLI_ARGS],
    )
    _assert_clean_failure(result, PBMC_OUTS, "not a prepared h5mu", out)
