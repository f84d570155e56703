"""Readers for the two 10x Genomics matrix formats: HDF5 (v3 layout) and MEX folders.

Both return a :class:`TenxMatrix` (cells x features CSR, barcodes, feature table); splitting
into modalities and count validation happen in :mod:`sci2cl.io.read`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from sci2cl.errors import InputError, one_line

#: Columns of :attr:`TenxMatrix.features`, in this order.
FEATURE_COLUMNS = ("id", "name", "feature_type", "genome", "interval")
SPARSE = ("data", "indices", "indptr")
#: File names of a MEX folder, each possibly gzip-compressed.
MEX_MATRIX, MEX_FEATURES, MEX_BARCODES = "matrix.mtx", "features.tsv", "barcodes.tsv"
GENE_EXPRESSION = "Gene Expression"
#: What reading a (gzip) text file raises when it is corrupt, truncated or malformed.
TEXT_FILE_ERRORS = (OSError, EOFError, zlib.error, ValueError)


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
    try:
        with h5py.File(path, "r") as handle:
            group = handle.get("matrix")
            if not isinstance(group, h5py.Group):
                raise InputError(path, "not a 10x HDF5 v3 matrix (no 'matrix' group)")
            missing = [k for k in (*SPARSE, "shape", "barcodes", "features") if k not in group]
            if missing or "id" not in group["features"]:
                lacks = ", ".join(missing) if missing else "features/id"
                raise InputError(path, f"10x HDF5 'matrix' group lacks {lacks}")
            check_sparse_group(group, path, "matrix")
            arrays = {k: group[k][()] for k in (*SPARSE, "shape", "barcodes")}
            table = {k: group["features"][k][()] for k in FEATURE_COLUMNS if k in group["features"]}
    except OSError as err:  # h5py: unreadable, truncated or corrupt (e.g. a failed inflate)
        raise InputError(path, f"cannot read HDF5 file: {one_line(err)}") from err
    shape = arrays["shape"]
    if shape.shape != (2,) or shape.dtype.kind not in "iu":
        raise InputError(path, f"matrix/shape must hold 2 integers, has {shape.tolist()}")
    n_features, n_cells = (int(v) for v in shape)
    counts = _sparse_counts(arrays, (n_cells, n_features), path)
    barcodes = _strings(arrays["barcodes"], path, "matrix/barcodes")
    table = {k: _strings(v, path, f"matrix/features/{k}") for k, v in table.items()}
    features = _feature_table(table, len(table["id"]))
    _check_lengths(path, counts, barcodes, features)
    return TenxMatrix(counts, barcodes, features)


def check_sparse_group(group: h5py.Group, path: Path, where: str) -> None:
    """InputError unless ``group``'s ``data`` are numbers and ``indices`` / ``indptr`` integers."""
    kinds = {"data": "biuf", "indices": "iu", "indptr": "iu"}
    for key, allowed in kinds.items():
        item = group.get(key)
        if not isinstance(item, h5py.Dataset) or item.dtype.kind not in allowed:
            found = item.dtype if isinstance(item, h5py.Dataset) else "nothing"
            wanted = "numbers" if key == "data" else "integers"
            raise InputError(path, f"{where}/{key} holds {found}; expected {wanted}")


def _sparse_counts(arrays: dict[str, np.ndarray], shape: tuple[int, int], path: Path):
    """Cells x features CSR from 10x's CSC arrays (features x cells), checked for consistency."""
    try:
        counts = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        counts.check_format(full_check=True)
    except ValueError as err:  # scipy: lengths, bounds or order of the arrays disagree
        raise InputError(path, f"inconsistent sparse matrix: {one_line(err)}") from err
    return counts


def _strings(values: np.ndarray, path: Path, where: str) -> np.ndarray:
    if values.dtype.kind not in "SUO":
        raise InputError(path, f"{where} holds {values.dtype}; expected strings")
    return _decode(values)


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
    except TEXT_FILE_ERRORS as err:  # also pandas' ParserError and UnicodeDecodeError (ValueError)
        raise InputError(path, f"cannot read file: {one_line(err)}") from err


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
    try:
        counts = sp.csr_matrix(scipy.io.mmread(matrix).T)
    except TEXT_FILE_ERRORS as err:  # scipy reports malformed Matrix Market text as ValueError
        raise InputError(matrix, f"cannot read Matrix Market file: {one_line(err)}") from err
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
