"""Read what a ``sci2cl run`` child wrote: embeddings from the h5mu, training time and epochs."""

from __future__ import annotations

import re
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd

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
