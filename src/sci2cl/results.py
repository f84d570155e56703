"""Assemble the output tables and MuData from embeddings (no file I/O here)."""

from __future__ import annotations

import json

import mudata as md
import numpy as np
import pandas as pd

from sci2cl import __version__

EMBEDDING_PREFIX = "sci2cl_"
OBSM_KEYS = {"joint": "X_sci2cl", "rna": "X_sci2cl_rna", "atac": "X_sci2cl_atac"}


def cell_identity(mdata: md.MuData) -> pd.DataFrame:
    """``barcode`` and ``sample`` per cell (from prepare's columns, else obs_names / 'sample')."""
    obs = mdata.obs
    barcode = obs["barcode"] if "barcode" in obs else pd.Series(mdata.obs_names, index=obs.index)
    sample = obs["sample"] if "sample" in obs else pd.Series("sample", index=obs.index)
    return pd.DataFrame(
        {"barcode": barcode.astype(str).to_numpy(), "sample": sample.astype(str).to_numpy()}
    )


def embedding_table(identity: pd.DataFrame, joint: np.ndarray) -> pd.DataFrame:
    """One row per cell: ``barcode``, ``sample``, ``sci2cl_0 .. sci2cl_{d-1}`` (float32)."""
    columns = {
        f"{EMBEDDING_PREFIX}{i}": joint[:, i].astype(np.float32) for i in range(joint.shape[1])
    }
    return pd.concat([identity.reset_index(drop=True), pd.DataFrame(columns)], axis=1)


def table_metadata(params: dict) -> dict[str, str]:
    """Parquet key/value metadata: version and the parameters of the run (JSON)."""
    return {"sci2cl_version": __version__, "sci2cl_params": json.dumps(params, default=str)}


def history_frame(history: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(history)


def annotate_mudata(
    mdata: md.MuData, embeddings: dict[str, np.ndarray], params: dict, history: list[dict]
) -> md.MuData:
    """Copy of ``mdata`` with the embeddings in ``obsm`` and params + loss history in ``uns``."""
    out = mdata.copy()
    for key, obsm_key in OBSM_KEYS.items():
        out.obsm[obsm_key] = embeddings[key].astype(np.float32)
    hist = history_frame(history)
    out.uns["sci2cl"] = {
        **dict(out.uns.get("sci2cl", {})),
        "version": __version__,
        "params": json.loads(json.dumps(params, default=str)),
        "history": {c: hist[c].to_numpy() for c in hist.columns},
    }
    return out
