"""Read paired RNA + ATAC counts from any supported input into a validated MuData.

Supported: a Cell Ranger ARC ``outs/`` folder, a bare 10x ``.h5`` (HDF5 v3 layout), a MEX
folder, an ``.h5mu`` with ``rna`` and ``atac`` modalities, or any folder (e.g. files staged by
Nextflow) that holds one of these somewhere below it.
"""

from __future__ import annotations

import os
import re
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import h5py
import mudata
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from anndata.utils import make_index_unique

from sci2cl.errors import InputError, Sci2clWarning, reading

GENE_EXPRESSION = "Gene Expression"
#: Modality name -> 10x feature type.
MODALITY_FEATURE_TYPES = {"rna": GENE_EXPRESSION, "atac": "Peaks"}
FILTERED_H5 = "filtered_feature_bc_matrix.h5"
FILTERED_MEX = "filtered_feature_bc_matrix"
RAW_NAMES = ("raw_feature_bc_matrix", "raw_feature_bc_matrix.h5")
METRICS_CSV = "per_barcode_metrics.csv"
FRAGMENT_NAMES = ("atac_fragments.tsv.gz", "fragments.tsv.gz")
MAX_SEARCH_DEPTH = 6
_PEAK_PATTERN = re.compile(r"^(?P<chrom>[^:_\s]+)[:_-](?P<start>\d+)[-_](?P<end>\d+)$")

#: Columns of :attr:`TenxMatrix.features`, in this order.
FEATURE_COLUMNS = ("id", "name", "feature_type", "genome", "interval")
SPARSE = ("data", "indices", "indptr")
#: File names of a MEX folder, each possibly gzip-compressed.
MEX_MATRIX, MEX_FEATURES, MEX_BARCODES = "matrix.mtx", "features.tsv", "barcodes.tsv"
#: What reading a (gzip) text file raises when it is corrupt, truncated or malformed.
TEXT_FILE_ERRORS = (OSError, EOFError, zlib.error, ValueError)


@dataclass(frozen=True)
class _Source:
    """A located input: reader kind, the path to read, and where ARC extras may sit."""

    kind: str  # "tenx_h5" | "mex" | "h5mu"
    path: Path
    extras_dir: Path | None = None


def read_multiome(path: str | Path) -> mudata.MuData:
    """Read paired counts into MuData with mods ``rna`` and ``atac`` (same cells, CSR float32).

    Raises :class:`~sci2cl.errors.InputError` naming the file and the problem on any failure.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or directory")
    source = _locate(path)
    mdata = _READERS[source.kind](source.path)
    mdata.uns["files"] = {**mdata.uns.get("files", {}), "input": os.path.abspath(source.path)}
    if source.extras_dir is not None:
        _attach_arc_extras(mdata, source.extras_dir)
    return mdata


def default_sample_name(path: str | Path) -> str:
    """Sample name implied by an input path: an ARC ``outs`` folder's parent, else the stem."""
    path = Path(os.path.abspath(path))
    if path.name in (FILTERED_H5, FILTERED_MEX) or path.name.startswith(RAW_NAMES):
        path = path.parent
    if path.name == "outs":
        path = path.parent
    name = path.name
    for suffix in (".gz", ".h5mu", ".h5ad", ".h5", ".hdf5"):
        name = name.removesuffix(suffix)
    return name or "sample"


def assemble_multiome(rna: ad.AnnData, atac: ad.AnnData) -> mudata.MuData:
    """MuData of two modalities that share obs_names, without pulling their columns up."""
    with mudata.set_options(pull_on_update=False):
        return mudata.MuData({"rna": rna, "atac": atac})


def _validate_counts(matrix: sp.csr_matrix, path: str | Path, modality: str) -> None:
    """Raise InputError unless ``matrix`` holds non-empty, finite, non-negative integer counts."""
    n_cells, n_features = matrix.shape
    if n_cells == 0 or n_features == 0:
        raise InputError(
            path, f"empty matrix: {modality} has {n_cells} cells x {n_features} features"
        )
    data = matrix.data
    if not np.any(data):
        raise InputError(path, f"empty matrix: {modality} has no non-zero counts")
    is_float = data.dtype.kind == "f"
    if is_float and not np.isfinite(data).all():
        raise InputError(path, f"{modality} counts contain NaN or infinite values")
    if (data < 0).any():
        raise InputError(path, f"{modality} counts contain negative values")
    fractional = data[data != np.floor(data)] if is_float else data[:0]
    if fractional.size:
        raise InputError(
            path, f"{modality} counts are not integers (e.g. {fractional[0]:g}); raw counts needed"
        )


# --- locating the matrix -------------------------------------------------------------------


def _locate(path: Path) -> _Source:
    if path.is_dir():
        return _search_folder(path)
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied")
    if re.fullmatch(r"matrix\.mtx(\.gz)?", path.name):
        return _Source("mex", path.parent, path.parent.parent)
    return _classify_file(path)


def _classify_file(path: Path) -> _Source:
    if not h5py.is_hdf5(path):
        if path.suffix.lower() in (".h5", ".hdf5", ".h5mu", ".h5ad"):
            raise InputError(path, "not an HDF5 file (corrupt, truncated or another format)")
        raise InputError(
            path,
            "unrecognised input; expected a 10x .h5, an .h5mu, a Cell "
            "Ranger ARC outs/ folder or a MEX folder",
        )
    with reading(path, "unreadable HDF5 file: {}", (OSError,)), h5py.File(path, "r") as handle:
        keys = set(handle.keys())
    if "mod" in keys:
        return _Source("h5mu", path)
    if "matrix" in keys:
        return _Source("tenx_h5", path, path.parent)
    raise InputError(
        path, "HDF5 file is neither a 10x matrix (no 'matrix' group) nor MuData (no 'mod' group)"
    )


def _search_folder(folder: Path) -> _Source:
    """Find the matrix in an ARC ``outs/`` folder, a MEX folder or a staged folder tree."""
    if is_mex_folder(folder):
        return _Source("mex", folder, folder.parent)
    found: dict[str, list[Path]] = {"tenx_h5": [], "mex": [], "h5mu": [], "raw": []}
    for root, dirs, files in os.walk(folder, followlinks=True):
        here = Path(root)
        depth = len(here.relative_to(folder).parts)
        found["raw"].extend(here / name for name in RAW_NAMES if name in dirs or name in files)
        below = sorted(d for d in dirs if not d.startswith(".") and d not in RAW_NAMES)
        dirs[:] = below if depth < MAX_SEARCH_DEPTH else []
        if FILTERED_H5 in files:
            found["tenx_h5"].append(here / FILTERED_H5)
        if here.name == FILTERED_MEX and is_mex_folder(here):
            found["mex"].append(here)
        found["h5mu"].extend(here / f for f in sorted(files) if f.endswith(".h5mu"))
    candidates = [(kind, path) for kind in ("tenx_h5", "mex", "h5mu") for path in found[kind]]
    if candidates:
        kind, chosen = _one_container(folder, candidates)
        return _Source(kind, chosen, None if kind == "h5mu" else chosen.parent)
    top_h5 = [p for p in sorted(folder.glob("*.h5")) if p.name not in RAW_NAMES]
    if len(top_h5) == 1:
        return _classify_file(top_h5[0])
    if found["raw"]:
        raise InputError(
            folder,
            "only raw_feature_bc_matrix found; sci2cl needs the filtered "
            "(cell-called) matrix, or pass the raw .h5 file itself",
        )
    raise InputError(
        folder,
        f"unrecognised folder layout: no {FILTERED_H5}, {FILTERED_MEX}/ "
        "MEX folder, matrix.mtx[.gz] or .h5mu found",
    )


def _one_container(folder: Path, candidates: list[tuple[str, Path]]) -> tuple[str, Path]:
    """The first candidate (h5 > MEX > h5mu), provided all belong to one sample's folder."""
    containers = {path.parent for _, path in candidates}
    kinds = [kind for kind, _ in candidates]
    if len(containers) > 1 or len(set(kinds)) < len(kinds):
        listed = ", ".join(str(path.relative_to(folder)) for _, path in candidates[:3])
        raise InputError(
            folder,
            f"ambiguous: {len(candidates)} candidate matrices ({listed}); pass one of them",
        )
    return candidates[0]


# --- 10x matrices: HDF5 and MEX ------------------------------------------------------


@dataclass(frozen=True)
class TenxMatrix:
    """A 10x feature-barcode matrix oriented cells x features."""

    counts: sp.csr_matrix
    barcodes: np.ndarray
    features: pd.DataFrame


def read_tenx_h5(path: Path) -> TenxMatrix:
    """Read ``matrix/`` of a 10x HDF5 v3 file (Cell Ranger >= 3, ARC, ATAC)."""
    # h5py raises OSError on unreadable, truncated or corrupt files (e.g. a failed inflate)
    with reading(path, "cannot read HDF5 file: {}", (OSError,)), h5py.File(path, "r") as handle:
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
    # scipy raises ValueError when lengths, bounds or order of the arrays disagree
    with reading(path, "inconsistent sparse matrix: {}", (ValueError,)):
        counts = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        counts.check_format(full_check=True)
    return counts


def _strings(values: np.ndarray, path: Path, where: str) -> np.ndarray:
    if values.dtype.kind not in "SUO":
        raise InputError(path, f"{where} holds {values.dtype}; expected strings")
    return np.asarray(values).astype(str)


def _feature_table(columns: dict[str, np.ndarray], n: int) -> pd.DataFrame:
    """:data:`FEATURE_COLUMNS` from ``columns`` (``id`` at least); the name defaults to the id."""
    defaults = {
        "name": columns["id"],
        "feature_type": GENE_EXPRESSION,
        "genome": "",
        "interval": "",
    }
    table = {**{k: np.broadcast_to(v, n) for k, v in defaults.items()}, **columns}
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
    return next((p for p in (folder / f"{name}.gz", folder / name) if p.is_file()), None)


def is_mex_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a MEX matrix (``matrix.mtx[.gz]``)."""
    return mex_file(folder, MEX_MATRIX) is not None


def _read_tsv(path: Path) -> pd.DataFrame:
    # pandas' ParserError and UnicodeDecodeError are ValueErrors
    with reading(path, "cannot read file: {}", TEXT_FILE_ERRORS):
        try:
            return pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            return pd.DataFrame({0: pd.Series(dtype=str)})


def read_tenx_mex(folder: Path) -> TenxMatrix:
    """Read a MEX folder: ``matrix.mtx``, ``features.tsv`` (or v2 ``genes.tsv``), ``barcodes.tsv``.

    ``features.tsv`` may have 2 (id, name), 3 (+ type) or 6 columns (ARC: + chrom, start, end).
    """
    files = {name: mex_file(folder, name) for name in (MEX_MATRIX, MEX_FEATURES, MEX_BARCODES)}
    files[MEX_FEATURES] = files[MEX_FEATURES] or mex_file(folder, "genes.tsv")
    for name, found in files.items():
        if found is None:
            raise InputError(folder, f"MEX folder lacks {name}[.gz]")
    matrix = files[MEX_MATRIX]
    # scipy reports malformed Matrix Market text as ValueError
    with reading(matrix, "cannot read Matrix Market file: {}", TEXT_FILE_ERRORS):
        counts = sp.csr_matrix(scipy.io.mmread(matrix).T)
    barcodes = _read_tsv(files[MEX_BARCODES])[0].to_numpy(dtype=str)
    raw = _read_tsv(files[MEX_FEATURES])
    names = ("id", "name", "feature_type")[: raw.shape[1]]
    columns = {key: raw[i].to_numpy(dtype=str) for i, key in enumerate(names)}
    if raw.shape[1] >= 6:
        interval = raw[3] + ":" + raw[4] + "-" + raw[5]
        columns["interval"] = np.where(raw[3] == "", "NA", interval).astype(str)
    features = _feature_table(columns, len(raw))
    _check_lengths(matrix, counts, barcodes, features)
    return TenxMatrix(counts, barcodes, features)


# --- readers -------------------------------------------------------------------------------


def _split_modalities(matrix: TenxMatrix, path: Path) -> mudata.MuData:
    n_cells, n_features = matrix.counts.shape
    if n_cells == 0 or n_features == 0:
        raise InputError(path, f"empty matrix: {n_cells} cells x {n_features} features")
    _check_unique_barcodes(pd.Index(matrix.barcodes), path, "matrix")
    types = matrix.features["feature_type"].to_numpy()
    columns = {mod: np.flatnonzero(types == ftype) for mod, ftype in MODALITY_FEATURE_TYPES.items()}
    missing = [mod for mod, idx in columns.items() if idx.size == 0]
    if missing:
        present = ", ".join(sorted(set(types))) or "none"
        wanted = " and ".join(f"'{MODALITY_FEATURE_TYPES[m]}' ({m})" for m in missing)
        raise InputError(path, f"only one modality: no {wanted} features (found: {present})")
    obs = pd.DataFrame(index=pd.Index(matrix.barcodes, dtype=str))
    mods = {}
    for mod, idx in columns.items():
        feats = matrix.features.iloc[idx]
        ids = np.where(feats["id"] != "", feats["id"], feats["name"])
        var = pd.DataFrame(index=pd.Index(ids, dtype=str))
        if mod == "rna":
            var["gene_name"] = feats["name"].to_numpy()
        var["feature_types"] = feats["feature_type"].to_numpy()
        var["genome"] = feats["genome"].to_numpy()
        interval = feats["interval"].to_numpy()
        if mod == "atac" and np.isin(interval, ["", "NA"]).any():
            interval = np.where(np.isin(interval, ["", "NA"]), _peak_intervals(ids), interval)
        var["interval"] = interval
        mods[mod] = _modality(matrix.counts[:, idx], obs.copy(), var, path, mod)
    return assemble_multiome(mods["rna"], mods["atac"])


def _read_h5mu(path: Path) -> mudata.MuData:
    # h5py, anndata and scipy raise OSError or ValueError on corrupt or odd content
    with reading(path, "cannot read h5mu file: {}", (OSError, ValueError)):
        _check_h5mu_counts(path)
        with mudata.set_options(pull_on_update=False), warnings.catch_warnings():
            # not written by muon, names not unique, ...: what matters is checked below
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(mu|ann)data\.")
            source = mudata.read_h5mu(path)
    return multiome_from_mudata(source, path)


def multiome_from_mudata(source: mudata.MuData, origin: str | Path = "MuData") -> mudata.MuData:
    """The cells of ``source`` that have both ``rna`` and ``atac`` (a warning says how many
    lack one), raw counts (``layers['counts']``, else ``X``) validated into CSR ``X``, var
    columns as the 10x readers give them; errors name ``origin``."""
    missing = [mod for mod in MODALITY_FEATURE_TYPES if mod not in source.mod]
    if missing:
        found = ", ".join(source.mod) or "none"
        raise InputError(
            origin,
            f"only one modality: no {' and '.join(repr(m) for m in missing)} modality"
            f" (found: {found})",
        )
    rna, atac = source["rna"], source["atac"]
    _check_unique_barcodes(rna.obs_names, origin, "rna")
    _check_unique_barcodes(atac.obs_names, origin, "atac")
    shared = rna.obs_names[rna.obs_names.isin(atac.obs_names)]
    if shared.empty:
        raise InputError(
            origin,
            f"no shared barcodes between 'rna' ({rna.n_obs} cells) and 'atac' ({atac.n_obs} cells)",
        )
    if len(shared) < max(rna.n_obs, atac.n_obs):
        warnings.warn(
            f"{origin}: {len(shared)} cells have both modalities and are kept; dropped "
            f"{rna.n_obs - len(shared)} of {rna.n_obs} 'rna' and {atac.n_obs - len(shared)} of "
            f"{atac.n_obs} 'atac' cells without the other",
            Sci2clWarning,
            stacklevel=2,
        )
    mods = {}
    for mod, adata in (("rna", rna), ("atac", atac)):
        rows = adata.obs_names.get_indexer(shared)
        counts = adata.layers.get("counts", adata.X)
        if counts is None or counts.dtype.kind not in "biuf":
            found = "no X" if counts is None else f"{counts.dtype} values"
            raise InputError(origin, f"{mod} counts must be numbers, found {found}")
        var = _h5mu_var(adata.var, mod)
        mods[mod] = _modality(
            sp.csr_matrix(counts)[rows], adata.obs.iloc[rows].copy(), var, origin, mod
        )
    mdata = assemble_multiome(mods["rna"], mods["atac"])
    extra_obs = source.obs.loc[shared, [c for c in source.obs if c not in mdata.obs]]
    for column in extra_obs:
        mdata.obs[column] = extra_obs[column].to_numpy()
    mdata.uns.update(source.uns)
    return mdata


def _check_h5mu_counts(path: Path) -> None:
    """InputError unless the counts of each modality (``layers/counts``, else ``X``) are
    numbers, stored densely or as a sparse matrix with integer indices."""
    with h5py.File(path, "r") as handle:
        for mod in MODALITY_FEATURE_TYPES:
            adata = handle.get(f"mod/{mod}")
            if not isinstance(adata, h5py.Group):
                continue  # reported with the modalities found, once read
            where = "layers/counts" if "counts" in adata.get("layers", {}) else "X"
            item = adata.get(where)
            if isinstance(item, h5py.Group):
                check_sparse_group(item, path, f"mod/{mod}/{where}")
            elif isinstance(item, h5py.Dataset) and item.dtype.kind not in "biuf":
                raise InputError(path, f"mod/{mod}/{where} holds {item.dtype}; expected numbers")


def _h5mu_var(var: pd.DataFrame, mod: str) -> pd.DataFrame:
    """Normalise an h5mu modality's var to the columns the 10x readers produce."""
    var = var.copy()
    if mod == "rna" and "gene_name" not in var:
        var["gene_name"] = var.index.astype(str)
        if "gene_ids" in var:
            var.index = pd.Index(var.pop("gene_ids").astype(str).to_numpy())
    if mod == "atac":
        var = var.drop(columns="gene_ids", errors="ignore")
        if "interval" not in var:
            var["interval"] = _peak_intervals(var.index)
    if "feature_types" not in var:
        var["feature_types"] = MODALITY_FEATURE_TYPES[mod]
    return var


def _peak_intervals(names: np.ndarray | pd.Index) -> np.ndarray:
    """``chr:start-end`` from peak names written ``chr:start-end``, ``chr_start_end``, ...

    Names that do not look like a peak give ``"NA"``.
    """
    parts = pd.Series(np.asarray(names, dtype=str)).str.extract(_PEAK_PATTERN)
    joined = parts["chrom"] + ":" + parts["start"] + "-" + parts["end"]
    return joined.fillna("NA").to_numpy(dtype=str)


def _modality(
    counts: sp.spmatrix, obs: pd.DataFrame, var: pd.DataFrame, path: str | Path, mod: str
) -> ad.AnnData:
    counts = sp.csr_matrix(counts)
    _validate_counts(counts, path, mod)
    counts = counts.astype(np.float32)
    counts.sort_indices()
    var.index = make_index_unique(pd.Index(var.index.astype(str)))
    obs.index = obs.index.astype(str)
    return ad.AnnData(X=counts, obs=obs, var=var)


def _check_unique_barcodes(barcodes: pd.Index, path: str | Path, where: str) -> None:
    if barcodes.has_duplicates:
        example = barcodes[barcodes.duplicated()][0]
        raise InputError(path, f"duplicate barcodes in {where} (e.g. {example})")


_READERS: dict[str, Callable[[Path], mudata.MuData]] = {
    "tenx_h5": lambda path: _split_modalities(read_tenx_h5(path), path),
    "mex": lambda path: _split_modalities(read_tenx_mex(path), path),
    "h5mu": _read_h5mu,
}


# --- Cell Ranger ARC extras ----------------------------------------------------------------


def _attach_arc_extras(mdata: mudata.MuData, folder: Path) -> None:
    """Join ``per_barcode_metrics.csv`` into obs and record the fragments file, when present."""
    metrics = folder / METRICS_CSV
    if metrics.is_file():
        # pandas: ParserError, no barcode column (ValueError)
        with reading(metrics, "cannot read per-barcode metrics: {}", TEXT_FILE_ERRORS):
            table = pd.read_csv(metrics, index_col="barcode")
        table = table.add_prefix("arc_").reindex(mdata.obs_names)
        for column in table:
            mdata.obs[column] = table[column].to_numpy()
    fragments = next((folder / n for n in FRAGMENT_NAMES if (folder / n).is_file()), None)
    if fragments is not None:
        location = str(Path(os.path.abspath(fragments)))
        mdata.uns.setdefault("files", {})["fragments"] = location
        mdata["atac"].uns.setdefault("files", {})["fragments"] = location
