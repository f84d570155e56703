"""Read what a ``sci2cl run`` child wrote: embeddings from the h5mu, training time and epochs."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import mudata as md
import numpy as np
import pandas as pd
from anndata.io import read_elem

from sci2cl.data import MODALITIES

SUMMARY = re.compile(r"trained (\d+) epochs(, stopped early)? on (\d+) cells in ([0-9.]+)s \((\w+)")


def training_record(log: Path) -> dict:
    """Training seconds, epochs and device from the CLI's summary line."""
    match = SUMMARY.search(log.read_text())
    if not match:
        return {}
    return {
        "train_s": float(match.group(4)),
        "epochs": int(match.group(1)),
        "stopped_early": bool(match.group(2)),
        "device": match.group(5),
    }


def embedding(run_folder: Path, obsm: str, barcodes: np.ndarray) -> np.ndarray:
    """``obsm`` of the run's h5mu, rows in ``barcodes`` order (prepare keeps input order);
    ``KEY:rna`` / ``KEY:atac`` keep that modality's half of a joint embedding."""
    key, _, stream = obsm.partition(":")
    mdata = md.read_h5mu(run_folder / "sci2cl.h5mu")
    x = np.asarray(mdata.obsm[key], dtype=np.float32)
    if stream:  # the joint is the modalities' streams side by side, in MODALITIES order
        x = np.split(x, len(MODALITIES), axis=1)[MODALITIES.index(stream)]
    names = mdata.obs["barcode"].astype(str).to_numpy() if "barcode" in mdata.obs else None
    if names is None:
        names = mdata.obs_names.astype(str).to_numpy()
    rows = pd.Index(names).get_indexer(barcodes)
    if (rows < 0).any():
        raise ValueError(f"{(rows < 0).sum()} input cells missing from {run_folder}")
    return x[rows]


def run_params(run_folder: Path) -> dict:
    """The run's ``uns["sci2cl"]["params"]`` (read alone, not the whole h5mu)."""
    with h5py.File(run_folder / "sci2cl.h5mu", "r") as handle:
        return read_elem(handle["uns/sci2cl/params"])


def validation_moc(run_folder: Path) -> dict:
    """Validation MOC at the first joint epoch, the selected (best) epoch and the last epoch
    (``sci2cl.history.csv``), and the fusion check's verdict (the h5mu's params)."""
    history = pd.read_csv(run_folder / "sci2cl.history.csv").set_index("epoch")
    params = run_params(run_folder)
    joint = history.index[history["stage"] == "joint"]
    moc = history["val_moc"] if "val_moc" in history else pd.Series(np.nan, history.index)
    first, last = (joint.min(), joint.max()) if len(joint) else (None, None)
    epochs = {"first_joint": first, "best": params.get("best_epoch"), "last": last}

    def value(epoch) -> float | None:
        return None if epoch is None or pd.isna(moc.get(epoch)) else float(moc[epoch])

    fusion = params.get("fusion_check") or {}
    return {
        **{f"{k}_epoch": None if e is None else int(e) for k, e in epochs.items()},
        **{f"val_moc_{k}": value(e) for k, e in epochs.items()},
        "fusion_check": {k: v.item() if hasattr(v, "item") else v for k, v in fusion.items()},
    }
