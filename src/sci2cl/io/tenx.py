"""Readers for the two 10x Genomics matrix formats: HDF5 (v3 layout) and MEX folders.

Both return a :class:`TenxMatrix` (cells x features CSR, barcodes, feature table); splitting
into modalities and count validation happen in :mod:`sci2cl.io.read`.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from sci2cl.errors import InputError

#: Columns of :attr:`TenxMatrix.features`, in this order.
FEATURE_COLUMNS = ("id", "name", "feature_type", "genome", "interval")
#: File names of a MEX folder, each possibly gzip-compressed.
MEX_MATRIX, MEX_FEATURES, MEX_BARCODES = "matrix.mtx", "features.tsv", "barcodes.tsv"
GENE_EXPRESSION = "Gene Expression"


@dataclass(frozen=True)
class TenxMatrix:
    """A 10x feature-barcode matrix oriented cells x features."""

    counts: sp.csr_matrix
    barcodes: np.ndarray
    features: pd.DataFrame


def _decode(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(str)


def read_tenx_h5(path: Path) -> TenxMatrix:
    """Read ``matrix/`` of a 10x HDF5 v3 file (Cell Ranger >= 3, ARC, ATAC)."""
    with h5py.File(path, "r") as handle:
        if "matrix" not in handle:
            raise InputError(path, "not a 10x HDF5 v3 matrix (no 'matrix' group)")
        group = handle["matrix"]
        missing = [
            k
            for k in ("data", "indices", "indptr", "shape", "barcodes", "features")
            if k not in group
        ]
        if missing:
            raise InputError(path, f"10x HDF5 'matrix' group lacks {', '.join(missing)}")
        n_features, n_cells = (int(v) for v in group["shape"][:])
        counts = sp.csr_matrix(
            (group["data"][:], group["indices"][:], group["indptr"][:]),
            shape=(n_cells, n_features),
        )
        counts.check_format(full_check=True)
        barcodes = _decode(group["barcodes"][:])
        feats = group["features"]
        if "id" not in feats:
            raise InputError(path, "10x HDF5 'matrix/features' lacks 'id'")
        table = {key: _decode(feats[key][:]) for key in FEATURE_COLUMNS if key in feats}
    features = _feature_table(table, len(table["id"]))
    _check_lengths(path, counts, barcodes, features)
    return TenxMatrix(counts, barcodes, features)


def _feature_table(columns: dict[str, np.ndarray], n: int) -> pd.DataFrame:
    ids = columns["id"]
    defaults = {"name": ids, "feature_type": GENE_EXPRESSION, "genome": "", "interval": ""}
    table = {"id": ids}
    for key, default in defaults.items():
        value = columns.get(key)
        table[key] = value if value is not None else np.broadcast_to(default, n)
    return pd.DataFrame(table, columns=list(FEATURE_COLUMNS))


def _check_lengths(
    path: Path, counts: sp.csr_matrix, barcodes: np.ndarray, features: pd.DataFrame
) -> None:
    n_cells, n_features = counts.shape
    if len(barcodes) != n_cells:
        raise InputError(path, f"matrix has {n_cells} cells but {len(barcodes)} barcodes")
    if len(features) != n_features:
        raise InputError(path, f"matrix has {n_features} features but {len(features)} listed")


def mex_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists (gzip preferred)."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def is_mex_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a MEX matrix (``matrix.mtx[.gz]``)."""
    return mex_file(folder, MEX_MATRIX) is not None


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return pd.DataFrame({0: pd.Series(dtype=str)})


def read_tenx_mex(folder: Path) -> TenxMatrix:
    """Read a MEX folder: ``matrix.mtx``, ``features.tsv`` (or v2 ``genes.tsv``), ``barcodes.tsv``.

    ``features.tsv`` may have 2 (id, name), 3 (+ type) or 6 columns (ARC: + chrom, start, end).
    """
    matrix = mex_file(folder, MEX_MATRIX)
    features_path = mex_file(folder, MEX_FEATURES) or mex_file(folder, "genes.tsv")
    barcodes_path = mex_file(folder, MEX_BARCODES)
    for name, found in (
        (MEX_MATRIX, matrix),
        (MEX_FEATURES, features_path),
        (MEX_BARCODES, barcodes_path),
    ):
        if found is None:
            raise InputError(folder, f"MEX folder lacks {name}[.gz]")
    assert matrix is not None and features_path is not None and barcodes_path is not None
    counts = sp.csr_matrix(scipy.io.mmread(matrix).T)
    barcodes = _read_tsv(barcodes_path)[0].to_numpy(dtype=str)
    raw = _read_tsv(features_path)
    columns: dict[str, np.ndarray] = {"id": raw[0].to_numpy(dtype=str)}
    if raw.shape[1] >= 2:
        columns["name"] = raw[1].to_numpy(dtype=str)
    if raw.shape[1] >= 3:
        columns["feature_type"] = raw[2].to_numpy(dtype=str)
    if raw.shape[1] >= 6:
        interval = raw[3] + ":" + raw[4] + "-" + raw[5]
        columns["interval"] = np.where(raw[3] == "", "NA", interval).astype(str)
    features = _feature_table(columns, len(raw))
    _check_lengths(matrix, counts, barcodes, features)
    return TenxMatrix(counts, barcodes, features)


# --- writers (round-trip, fixtures, tests) ---------------------------------------------------


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
