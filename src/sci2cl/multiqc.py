"""MultiQC custom content from the files sci2cl writes.

Reads prepared h5mu files (per-sample QC recorded by ``sci2cl prepare`` in
``uns["sci2cl"]["prepare"]``), trained h5mu files (embedding summary, Leiden clusters when
present), ``*.history.csv`` (training curves) and UMAP PNGs, and writes MultiQC custom-content
files (``*_mqc.json`` and ``*_mqc.png``) that ``multiqc`` turns into report sections. Only
``uns`` and a few ``obs`` / ``obsm`` entries of the h5mu files are read, never the counts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from anndata.io import read_elem

from sci2cl.errors import InputError

PREPARED_SUFFIX = ".prepared.h5mu"
CLUSTER_KEY = "sci2cl_leiden"
EMBEDDING_KEY = "X_sci2cl"


def write_multiqc_content(inputs: Iterable[Path], outdir: Path) -> list[Path]:
    """Write the MultiQC custom-content files for ``inputs`` into ``outdir``; return them."""
    inputs = sorted({Path(p) for p in inputs}, key=lambda p: p.name)
    prepared = [p for p in inputs if p.name.endswith(PREPARED_SUFFIX)]
    trained = [p for p in inputs if p.suffix == ".h5mu" and p not in prepared]
    histories = [p for p in inputs if p.name.endswith(".history.csv")]
    umaps = [p for p in inputs if p.suffix == ".png" and "umap" in p.name]
    content: dict[str, dict[str, Any]] = {}  # everything is read before anything is written
    qc = {_prefix(p, PREPARED_SUFFIX): _prepare_qc(p) for p in prepared}
    if qc:
        content["sci2cl_prepare"] = _qc_table(qc)
        content["sci2cl_prepare_cells"] = _qc_cells_bargraph(qc)
    if trained:
        rows = {_prefix(p, ".h5mu"): _embedding_summary(p) for p in trained}
        content["sci2cl_embedding"] = _embedding_table(rows)
    if histories:
        curves = {_prefix(p, ".history.csv"): _read_history(p) for p in histories}
        content["sci2cl_training"] = _training_linegraph(curves)
    outdir.mkdir(parents=True, exist_ok=True)
    written = [_dump(outdir, name, section) for name, section in content.items()]
    for png in umaps:
        target = outdir / f"sci2cl_{png.stem.replace('.', '_')}_mqc.png"
        shutil.copyfile(png, target)
        written.append(target)
    return written


# --- reading -------------------------------------------------------------------------------


def _prefix(path: Path, suffix: str) -> str:
    return path.name.removesuffix(suffix)


def _read_uns(path: Path) -> dict[str, Any]:
    try:
        with h5py.File(path, "r") as handle:
            return read_elem(handle["uns"]) if "uns" in handle else {}
    except (OSError, KeyError) as err:
        raise InputError(path, f"cannot read h5mu: {err}") from err


def _prepare_qc(path: Path) -> dict[str, Any]:
    record = _read_uns(path).get("sci2cl", {}).get("prepare")
    if record is None:
        raise InputError(path, "no uns['sci2cl']['prepare']: not written by sci2cl prepare")
    return record


def _embedding_summary(path: Path) -> dict[str, Any]:
    sci2cl = _read_uns(path).get("sci2cl", {})
    params = sci2cl.get("params", {})
    try:
        with h5py.File(path, "r") as handle:
            if f"obsm/{EMBEDDING_KEY}" not in handle:
                raise InputError(path, f"no obsm['{EMBEDDING_KEY}']: not a trained sci2cl h5mu")
            n_cells, n_dims = handle[f"obsm/{EMBEDDING_KEY}"].shape
            obs = handle["obs"]
            samples = read_elem(obs["sample"]) if "sample" in obs else None
            clusters = read_elem(obs[CLUSTER_KEY]) if CLUSTER_KEY in obs else None
    except OSError as err:
        raise InputError(path, f"cannot read h5mu: {err}") from err
    fusion = params.get("fusion_check", {})
    row: dict[str, Any] = {
        "cells": int(n_cells),
        "dimensions": int(n_dims),
        "samples": int(pd.Series(samples).nunique()) if samples is not None else 1,
        "epochs_run": params.get("epochs_run"),
        "best_epoch": params.get("best_epoch"),
        "cross_attention_kept": fusion.get("residual_kept") if fusion.get("tested") else None,
        "leiden_clusters": int(pd.Series(clusters).nunique()) if clusters is not None else None,
    }
    return {key: _plain(value) for key, value in row.items() if value is not None}


def _read_history(path: Path) -> pd.DataFrame:
    try:
        history = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read training history: {err}") from err
    if "epoch" not in history or "train_loss" not in history:
        raise InputError(path, "not a sci2cl history (no 'epoch' and 'train_loss' columns)")
    return history


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones (JSON)."""
    return value.item() if isinstance(value, np.generic) else value


# --- MultiQC custom content ------------------------------------------------------------------


def _dump(outdir: Path, name: str, content: dict[str, Any]) -> Path:
    path = outdir / f"{name}_mqc.json"
    path.write_text(json.dumps({"id": name, **content}, indent=1, default=_plain) + "\n")
    return path


def _qc_table(qc: dict[str, dict[str, Any]]) -> dict[str, Any]:
    columns = {
        "n_cells_in": "Cells in",
        "n_cells_out": "Cells kept",
        "n_genes_in": "Genes in",
        "n_genes_out": "Genes kept",
        "n_genes_selected": "Genes selected",
        "n_peaks_in": "Peaks in",
        "n_peaks_out": "Peaks kept",
        "n_peaks_selected": "Peaks selected",
    }
    return {
        "section_name": "sci2cl: per-sample QC",
        "description": "Cells and features per sample before and after `sci2cl prepare` "
        "(cell QC, feature filtering, then feature selection for the model).",
        "plot_type": "table",
        "pconfig": {
            "id": "sci2cl_prepare_table",
            "title": "sci2cl prepare",
            "col1_header": "Sample",
        },
        "headers": {key: {"title": title, "format": "{:,.0f}"} for key, title in columns.items()},
        "data": {s: {k: int(r[k]) for k in columns if k in r} for s, r in qc.items()},
    }


def _qc_cells_bargraph(qc: dict[str, dict[str, Any]]) -> dict[str, Any]:
    data = {}
    for sample, record in qc.items():
        bars = {"kept": int(record["n_cells_out"])}
        removed = record.get("cells_removed", {})
        bars.update({f"removed: {rule}": int(n) for rule, n in removed.items()})
        data[sample] = bars
    return {
        "section_name": "sci2cl: cells kept and removed",
        "description": "Cells per sample kept by `sci2cl prepare`, and removed by each QC rule.",
        "plot_type": "bargraph",
        "pconfig": {"id": "sci2cl_prepare_cells_plot", "title": "sci2cl: cells", "ylab": "Cells"},
        "data": data,
    }


def _embedding_table(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "section_name": "sci2cl: embedding",
        "description": "One row per trained model: cells embedded, joint embedding dimensions, "
        "samples, training epochs, whether the fusion check kept the cross-attention "
        "residual, and Leiden clusters on the joint graph (when written).",
        "plot_type": "table",
        "pconfig": {
            "id": "sci2cl_embedding_table",
            "title": "sci2cl embedding",
            "col1_header": "Model",
        },
        "data": rows,
    }


def _training_linegraph(curves: dict[str, pd.DataFrame]) -> dict[str, Any]:
    data = {}
    for name, history in curves.items():
        for split in ("train", "val"):
            column = f"{split}_loss"
            if column in history:
                values = history[["epoch", column]].dropna()
                data[f"{name} ({split})"] = {
                    int(e): float(v) for e, v in zip(values["epoch"], values[column], strict=True)
                }
    return {
        "section_name": "sci2cl: training curves",
        "description": "Weighted total loss per epoch on the training cells and on held-out "
        "validation cells (reconstruction-only warm-up first, then all losses).",
        "plot_type": "linegraph",
        "pconfig": {
            "id": "sci2cl_training_plot",
            "title": "sci2cl: loss per epoch",
            "xlab": "Epoch",
            "ylab": "Loss",
        },
        "data": data,
    }
