"""Loaders for the real benchmark data (a path to ``shared/data`` is passed in)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from sci2cl.io import assemble_multiome

SNARE = "snareseq_mouse_cortex_scmomat"


def load_snare(data_dir: str | Path) -> tuple[md.MuData, pd.DataFrame]:
    """SNARE-seq adult mouse cortex (10,309 cells): raw counts MuData and the label table."""
    d = Path(data_dir) / SNARE
    meta = pd.read_csv(d / "meta_c1.csv", index_col=0)
    meta.index = meta.index.astype(str)
    genes = pd.read_csv(d / "genes.txt", header=None)[0].astype(str).to_numpy()
    peaks = pd.read_csv(d / "regions.txt", header=None)[0].astype(str).to_numpy()

    def modality(matrix: str, names: np.ndarray, kind: str) -> ad.AnnData:
        x = sp.load_npz(d / matrix).T.tocsr().astype(np.float32)
        var = pd.DataFrame({"feature_types": kind}, index=pd.Index(names))
        return ad.AnnData(x, obs=pd.DataFrame(index=meta.index.copy()), var=var)

    rna = modality("GxC1.npz", genes, "Gene Expression")
    atac = modality("RxC1.npz", peaks, "Peaks")
    atac.var["interval"] = [p.replace("_", ":", 1).replace("_", "-", 1) for p in peaks]
    rna.var_names_make_unique()
    atac.var_names_make_unique()
    return assemble_multiome(rna, atac), meta
