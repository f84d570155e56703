"""Writers of the two 10x matrix formats (HDF5 v3, MEX), for building test inputs and fixtures."""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from sci2cl.io.read import FEATURE_COLUMNS, MEX_BARCODES, MEX_FEATURES, MEX_MATRIX, TenxMatrix


def write_tenx_h5(path: Path, matrix: TenxMatrix) -> None:
    """Write ``matrix`` in the 10x HDF5 v3 layout (``matrix/`` CSC, features x cells)."""
    counts = sp.csr_matrix(matrix.counts)
    features = matrix.features
    options = {"compression": "gzip", "track_times": False}
    with h5py.File(path, "w", track_order=True) as handle:
        handle.attrs["filetype"] = "matrix"
        handle.attrs["version"] = 2
        group = handle.create_group("matrix")
        group.create_dataset("barcodes", data=np.asarray(matrix.barcodes, dtype=bytes), **options)
        group.create_dataset("data", data=counts.data, **options)
        group.create_dataset("indices", data=counts.indices.astype(np.int64), **options)
        group.create_dataset("indptr", data=counts.indptr.astype(np.int64), **options)
        group.create_dataset("shape", data=np.array(counts.shape[::-1], dtype=np.int32))
        feats = group.create_group("features")
        for key in FEATURE_COLUMNS:
            feats.create_dataset(key, data=features[key].to_numpy(dtype=bytes), **options)
        feats.create_dataset("_all_tag_keys", data=np.array([b"genome", b"interval"]))


def write_tenx_mex(folder: Path, matrix: TenxMatrix) -> None:
    """Write ``matrix`` as a gzip MEX folder with Cell Ranger ARC's 6-column features.tsv."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = sp.csr_matrix(matrix.counts)
    field = "integer" if counts.dtype.kind in "iu" else "real"
    with _gzip_writer(folder / f"{MEX_MATRIX}.gz") as handle:
        scipy.io.mmwrite(handle, counts.T.tocoo(), field=field)
    features = matrix.features
    parts = features["interval"].str.extract(r"^(?P<chrom>[^:]+):(?P<start>\d+)-(?P<end>\d+)$")
    table = pd.concat([features[["id", "name", "feature_type"]], parts.fillna("")], axis=1)
    with _gzip_writer(folder / f"{MEX_FEATURES}.gz") as handle:
        handle.write(table.to_csv(sep="\t", header=False, index=False).encode())
    with _gzip_writer(folder / f"{MEX_BARCODES}.gz") as handle:
        handle.write("".join(f"{b}\n" for b in matrix.barcodes).encode())


def _gzip_writer(path: Path) -> gzip.GzipFile:
    """Reproducible gzip output (no timestamp in the header)."""
    return gzip.GzipFile(path, mode="wb", mtime=0)
