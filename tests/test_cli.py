"""End-to-end CLI on the committed real fixtures: run, train, embed, evaluate."""

from __future__ import annotations

import json
import shutil

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

import sci2cl
from sci2cl import __version__
from sci2cl.cli import main
from sci2cl.evaluate import EvaluationConfig, evaluate_embedding, read_embeddings
from sci2cl.io import read_multiome
from sci2cl.model import ModelConfig

SMALL_CLI_MODEL = dict(latent_dim=8, hidden_dims=(32, 16), n_views=2, n_heads=2, n_tokens=2)
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
    train_help = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())
    assert "--latent-dim INTEGER RANGE Latent size per modality." in train_help


def test_train_writes_every_output(snare_run):
    out, result = snare_run
    for suffix in OUTPUTS:
        assert (out / f"snare{suffix}").stat().st_size > 0, suffix
    assert "trained 3 epochs on 1500 cells" in result.stderr
    assert "best validation loss" in result.stderr
    table = pd.read_parquet(out / "snare.embeddings.parquet")
    # joint = each modality's principal components of decoded expression side by side
    width = 2 * ModelConfig().joint_components
    assert list(table.columns) == ["barcode", "sample", "sci2cl_leiden"] + [
        f"sci2cl_{i}" for i in range(width)
    ]
    assert len(table) == 1500 and table["barcode"].is_unique and set(table["sample"]) == {"snare"}
    assert all(table[f"sci2cl_{i}"].dtype == np.float32 for i in range(width))
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
    assert mdata.obsm["X_sci2cl"].shape == (1500, width) and mdata.obsm["X_umap"].shape == (1500, 2)
    clusters = mdata.obs["sci2cl_leiden"]
    assert clusters.astype(str).tolist() == table["sci2cl_leiden"].tolist()
    assert 2 <= clusters.nunique() < 100 and clusters.value_counts().min() > 0
    for key in ("X_sci2cl_rna", "X_sci2cl_atac"):
        assert mdata.obsm[key].shape == (1500, 8)
    np.testing.assert_array_equal(mdata.obsm["X_sci2cl"], table.iloc[:, 3:].to_numpy())
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
        np.testing.assert_allclose(a.iloc[:, 3:], b.iloc[:, 3:], rtol=1e-4, atol=1e-5)


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
    scores = []
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
        scores.append(metrics)
    assert "umap_kmeans_nmi" not in metrics  # --no-paper-protocol on the h5mu round
    # the CLI matched labels to cells: it scores exactly what the library does on the
    # embedding with its labels aligned by barcode, and well above the same scores for
    # shuffled labels (test_quality.py holds the quality floors of the defaults)
    identity, embedding = read_embeddings(out / "snare.embeddings.parquet")
    labels = pd.read_csv(SNARE_LABELS, index_col=0)["cluster (remapped)"]
    labels = labels.reindex(identity["barcode"]).to_numpy().astype(str)
    keep = labels != "Mis"
    aligned = evaluate_embedding(embedding[keep], labels[keep], EvaluationConfig())
    shuffled = np.random.default_rng(0).permutation(labels[keep])
    config = EvaluationConfig(seeds=(0,), paper_protocol=False)
    chance = evaluate_embedding(embedding[keep], shuffled, config)
    for key in ("leiden_nmi", "kmeans_nmi", "umap_kmeans_nmi"):
        assert scores[0][key] == pytest.approx(aligned[key], abs=1e-12), key
    for key in ("leiden_nmi", "kmeans_nmi"):
        assert scores[0][key] == scores[1][key] > 2 * chance[key], (key, scores, chance[key])


def test_evaluate_refuses_duplicated_label_rows(snare_run, tmp_path):
    out, _ = snare_run
    table = pd.read_csv(SNARE_LABELS)
    labels = tmp_path / "labels.csv"
    pd.concat([table, table.iloc[[5, 9]]]).to_csv(labels, index=False)
    result = CliRunner().invoke(
        main,
        ["evaluate", "--input", str(out / "snare.embeddings.parquet"), "--labels", str(labels),
         "--label-column", "cluster (remapped)", "--output", str(tmp_path / "m.json")],
    )  # fmt: skip
    example = table.iloc[5, 0]
    _assert_clean_failure(
        result, labels, f"2 cells have several rows (e.g. {example})", tmp_path / "no"
    )
    assert result.exit_code == 2 and not (tmp_path / "m.json").exists()


def test_three_line_api_is_the_cli(snare_run):
    """A notebook trains and embeds a MuData in three lines, as ``sci2cl prepare`` + ``train``
    do; a saved model maps the same cells again."""
    out, _ = snare_run
    mdata = md.read_h5mu(SNARE_H5MU)
    torch.set_num_threads(1)

    model = sci2cl.SCI2CL.setup(mdata, sample="snare", **SMALL_CLI_MODEL)
    model.train(max_epochs=3, warmup_epochs=1, batch_size=128)
    z = model.get_latent_representation()

    cli = pd.read_parquet(out / "snare.embeddings.parquet")
    assert model.mdata.obs_names.tolist() == cli["barcode"].tolist()
    np.testing.assert_allclose(z, cli.iloc[:, 3:].to_numpy(), rtol=1e-4, atol=1e-5)
    assert model.get_latent_representation("rna").shape == (len(cli), 8)
    query = sci2cl.SCI2CL.load(out / "snare.model.pt").map_query(mdata, sample="snare")
    np.testing.assert_allclose(query.get_latent_representation(), z, rtol=1e-4, atol=1e-5)
    annotated = query.to_mudata()
    assert {"X_sci2cl", "X_sci2cl_rna", "X_sci2cl_atac", "X_umap"} <= set(annotated.obsm)
    assert annotated.obs["sci2cl_leiden"].nunique() > 1


def test_run_on_arc_outs_folder_keeps_per_barcode_metrics(tmp_path):
    outs = tmp_path / "pbmc_arc" / "outs"
    shutil.copytree(PBMC_OUTS, outs)
    rna = read_multiome(outs)["rna"]
    counts = rna.X.sum(axis=1).A1.astype(int)  # what ARC reports as gex_umis_count
    metrics = pd.DataFrame({"barcode": rna.obs_names, "is_cell": 1, "gex_umis_count": counts})
    metrics.to_csv(outs / "per_barcode_metrics.csv", index=False)
    result = invoke(
        "run", "--input", outs, "--output-prefix", tmp_path / "out" / "pbmc", "--no-figures",
        *SMALL_CLI_ARGS,
    )  # fmt: skip
    table = pd.read_parquet(tmp_path / "out" / "pbmc.embeddings.parquet")
    assert len(table) == 937 and set(table["sample"]) == {"pbmc_arc"}
    assert "sample pbmc_arc: 1000 cells -> 937" in result.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"pbmc{s}" for s in OUTPUTS[:4])
    mdata = md.read_h5mu(tmp_path / "out" / "pbmc.h5mu")
    umis = mdata["rna"].obs["total_counts"].astype(int).tolist()
    assert mdata.obs["arc_gex_umis_count"].tolist() == umis and mdata.n_obs == 937
    assert (mdata.obs["arc_is_cell"] == 1).all()


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
