"""A fuzz corpus of corrupted inputs, generated from the committed fixtures (nothing of it is
committed): truncations, byte flips inside every dataset, wrong dtypes, duplicated or partly
shared barcodes, missing feature types, in 10x h5, h5mu and MEX form."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from conftest import PBMC_H5, PBMC_MEX

from sci2cl.io import assemble_multiome, read_multiome, write_h5mu

Build = Callable[[Path], Path]


def _copy(source: Path, tmp: Path, name: str) -> Path:
    path = tmp / name
    if source.is_dir():
        shutil.copytree(source, path)
    else:
        shutil.copyfile(source, path)
    return path


def _pbmc_h5mu(tmp: Path) -> Path:
    path = tmp / "pbmc.h5mu"
    write_h5mu(read_multiome(PBMC_H5), path)
    return path


def truncated(source: Callable[[Path], Path], fraction: float) -> Build:
    def build(tmp: Path) -> Path:
        path = source(tmp)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return build


def flipped(source: Callable[[Path], Path], dataset: str) -> Build:
    """One byte inverted in the middle of ``dataset``'s stored (compressed) bytes."""

    def build(tmp: Path) -> Path:
        path = source(tmp)
        with h5py.File(path, "r") as handle:
            store = handle[dataset].id
            if handle[dataset].chunks:
                info = store.get_chunk_info(0)
                offset, size = info.byte_offset, info.size
            else:
                offset, size = store.get_offset(), store.get_storage_size()
        with open(path, "r+b") as handle:
            handle.seek(offset + size // 2)
            byte = handle.read(1)
            handle.seek(offset + size // 2)
            handle.write(bytes([byte[0] ^ 0xFF]))
        return path

    return build


def edited(source: Callable[[Path], Path], dataset: str, change: Callable) -> Build:
    """``dataset`` replaced by ``change(its values)`` (a new dtype or length)."""

    def build(tmp: Path) -> Path:
        path = source(tmp)
        with h5py.File(path, "r+") as handle:
            values = change(handle[dataset][()])
            del handle[dataset]
            if values is not None:
                handle.create_dataset(dataset, data=values)
        return path

    return build


def _h5(tmp: Path) -> Path:
    return _copy(PBMC_H5, tmp, "pbmc.h5")


def _mex(tmp: Path) -> Path:
    return _copy(PBMC_MEX, tmp, "mex")


def mex_edited(name: str, change: Callable[[bytes], bytes]) -> Build:
    def build(tmp: Path) -> Path:
        folder = _mex(tmp)
        path = folder / name
        path.write_bytes(gzip.compress(change(gzip.decompress(path.read_bytes())), mtime=0))
        return folder

    return build


def mex_raw(name: str, change: Callable[[bytes], bytes]) -> Build:
    """A MEX file's gzip bytes changed (not its content)."""

    def build(tmp: Path) -> Path:
        folder = _mex(tmp)
        path = folder / name
        path.write_bytes(change(path.read_bytes()))
        return folder

    return build


def _lines(change: Callable[[list[bytes]], list[bytes]]) -> Callable[[bytes], bytes]:
    return lambda data: b"\n".join(change(data.rstrip(b"\n").split(b"\n"))) + b"\n"


def _flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def _mtx_entry(change: Callable[[list[bytes]], list[bytes]]) -> Callable[[bytes], bytes]:
    """Change the first entry line of a Matrix Market body (after comments and the size)."""

    def edit(lines: list[bytes]) -> list[bytes]:
        first = next(i for i, line in enumerate(lines) if not line.startswith(b"%")) + 1
        lines[first] = b" ".join(change(lines[first].split()))
        return lines

    return _lines(edit)


def _size_line(change: Callable[[int], int]) -> Callable[[bytes], bytes]:
    """Change the number of entries the Matrix Market size line announces."""

    def edit(lines: list[bytes]) -> list[bytes]:
        size = next(i for i, line in enumerate(lines) if not line.startswith(b"%"))
        rows, cols, entries = lines[size].split()
        lines[size] = b" ".join([rows, cols, str(change(int(entries))).encode()])
        return lines

    return _lines(edit)


def h5mu_modality_edit(change: Callable[[Path], None]) -> Build:
    def build(tmp: Path) -> Path:
        path = _pbmc_h5mu(tmp)
        change(path)
        return path

    return build


def _rename_obs(modality: str, rename: Callable[[np.ndarray], np.ndarray]) -> Callable:
    def change(path: Path) -> None:
        with h5py.File(path, "r+") as handle:
            group = handle[f"mod/{modality}/obs"]
            key = group.attrs["_index"]
            values = rename(group[key][()].astype(str))
            del group[key]
            group.create_dataset(key, data=values.astype(object), dtype=h5py.string_dtype())

    return change


def _drop_modality(modality: str) -> Callable:
    def change(path: Path) -> None:
        with h5py.File(path, "r+") as handle:
            del handle[f"mod/{modality}"]
            order = [m for m in handle["mod"].attrs["mod-order"] if m != modality]
            handle["mod"].attrs["mod-order"] = order

    return change


def _first_dup(values: np.ndarray) -> np.ndarray:
    values = values.copy()
    values[1] = values[0]
    return values


def _strings(values: np.ndarray) -> np.ndarray:
    return np.array([str(v).encode() for v in values])


#: name -> builder; every case must fail with one line naming the file (exit 2)
CORPUS: dict[str, Build] = {
    **{f"h5_truncated_{p}": truncated(_h5, p / 100) for p in (1, 10, 30, 60, 90, 99)},
    **{
        f"h5_flip_{d.replace('/', '_')}": flipped(_h5, f"matrix/{d}")
        for d in (
            "barcodes",
            "data",
            "indices",
            "indptr",
            "shape",
            "features/id",
            "features/feature_type",
            "features/interval",
        )
    },
    "h5_data_as_strings": edited(_h5, "matrix/data", _strings),
    "h5_indptr_as_float": edited(_h5, "matrix/indptr", lambda v: v.astype(float) + 0.5),
    "h5_barcodes_as_numbers": edited(_h5, "matrix/barcodes", lambda v: np.arange(len(v))),
    "h5_shape_too_short": edited(_h5, "matrix/shape", lambda v: v[:1]),
    "h5_indices_too_short": edited(_h5, "matrix/indices", lambda v: v[:-10]),
    "h5_no_feature_types": edited(_h5, "matrix/features/feature_type", lambda v: None),
    "h5_all_peaks": edited(
        _h5, "matrix/features/feature_type", lambda v: np.full_like(v, b"Peaks")
    ),
    "h5_duplicated_barcodes": edited(_h5, "matrix/barcodes", _first_dup),
    **{f"h5mu_truncated_{p}": truncated(_pbmc_h5mu, p / 100) for p in (20, 80)},
    "h5mu_flip_rna_data": flipped(_pbmc_h5mu, "mod/rna/X/data"),
    "h5mu_flip_atac_indices": flipped(_pbmc_h5mu, "mod/atac/X/indices"),
    "h5mu_data_as_strings": edited(_pbmc_h5mu, "mod/rna/X/data", _strings),
    "h5mu_indptr_as_float": edited(_pbmc_h5mu, "mod/atac/X/indptr", lambda v: v / 2),
    "h5mu_duplicated_barcodes": h5mu_modality_edit(_rename_obs("rna", _first_dup)),
    "h5mu_no_atac": h5mu_modality_edit(_drop_modality("atac")),
    "mex_truncated_matrix": mex_raw("matrix.mtx.gz", lambda d: d[: len(d) // 2]),
    "mex_flip_matrix": mex_raw("matrix.mtx.gz", _flip_middle),
    "mex_flip_barcodes": mex_raw("barcodes.tsv.gz", _flip_middle),
    "mex_not_matrix_market": mex_edited("matrix.mtx.gz", lambda d: d.replace(b"%%Matrix", b"%%")),
    "mex_entry_out_of_range": mex_edited("matrix.mtx.gz", _mtx_entry(lambda e: [b"99999", *e[1:]])),
    "mex_entry_not_a_number": mex_edited("matrix.mtx.gz", _mtx_entry(lambda e: [*e[:2], b"abc"])),
    "mex_negative_count": mex_edited("matrix.mtx.gz", _mtx_entry(lambda e: [*e[:2], b"-4"])),
    "mex_size_line_wrong": mex_edited("matrix.mtx.gz", _size_line(lambda n: n + 10)),
    "mex_barcodes_missing_lines": mex_edited("barcodes.tsv.gz", _lines(lambda ls: ls[:-5])),
    "mex_duplicated_barcodes": mex_edited("barcodes.tsv.gz", _lines(lambda ls: [ls[0], *ls[:-1]])),
    "mex_features_empty": mex_edited("features.tsv.gz", lambda d: b""),
    "mex_features_two_columns": mex_edited(
        "features.tsv.gz", _lines(lambda ls: [b"\t".join(x.split(b"\t")[:2]) for x in ls])
    ),
}


def partly_shared_barcodes(tmp: Path) -> Path:
    """A valid h5mu whose ``atac`` lacks 100 of the ``rna`` cells (a warning, not an error)."""
    mdata = read_multiome(PBMC_H5)
    path = tmp / "partial.h5mu"
    write_h5mu(assemble_multiome(mdata["rna"].copy(), mdata["atac"][100:].copy()), path)
    return path
