"""Atomic output writing: MuData (.h5mu) and Parquet with key/value metadata."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import h5py
import mudata
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mudata._core.io import _write_h5mu  # writes into an open h5py.File

from sci2cl.errors import Sci2clError, one_line

MUDATA_HEADER = "MuData (format-version={};creator=muon;creator-version={})"
FULL_DISK_BYTES = 1 << 20  # less free space than this after a failed write: the disk is full


def temp_name(final: Path) -> Path:
    """Hidden sibling of ``final`` used while it is being written."""
    return final.parent / f".{final.name}.tmp-{os.getpid()}"


@contextmanager
def staged_outputs(finals: Mapping[str, Path]) -> Iterator[dict[str, Path]]:
    """Yield temporary paths for ``finals``; rename all on success, delete all on error.

    Temporaries live next to their final names (same file system, so renames are atomic).
    Missing parent folders are created and removed again on failure when left empty. A failure
    caused by the output location (full disk, permissions, a file where a folder should be)
    becomes a :class:`Sci2clError` naming the outputs.
    """
    finals = {key: Path(path) for key, path in finals.items()}
    names = _shorthand([str(path) for path in finals.values()])
    try:
        created = _make_parents(finals.values())
    except OSError as err:
        raise Sci2clError(f"{names}: cannot write output ({_problem(err, None)})") from err
    temps = {key: temp_name(path) for key, path in finals.items()}
    try:
        yield dict(temps)
        missing = [str(finals[k]) for k, t in temps.items() if not t.exists()]
        if missing:
            raise RuntimeError(f"outputs were not written: {', '.join(missing)}")
    except BaseException as err:
        folder = next(iter(finals.values())).parent
        problem = _problem(err, folder) if isinstance(err, Exception) else None  # disk still full
        for temp in temps.values():
            _remove(temp)
        for folder in reversed(created):
            _remove_if_empty(folder)
        if problem is None:
            raise
        raise Sci2clError(f"{names}: cannot write output ({problem})") from err
    for key, temp in temps.items():
        os.replace(temp, finals[key])


def _shorthand(names: list[str]) -> str:
    """``out/x.{a,b}`` for ``out/x.a`` and ``out/x.b``; one name as is."""
    stem = os.path.commonprefix(names)
    stem = stem[: stem.rfind(".") + 1] if len(names) > 1 else ""
    if not stem.rstrip("."):
        return ", ".join(names)
    return f"{stem}{{{','.join(name[len(stem) :] for name in names)}}}"


def _problem(err: BaseException, folder: Path | None) -> str | None:
    """Why writing failed when the output location is the cause (a full disk, whatever the
    writer raised; an OS error); None for anything else."""
    if folder is not None:
        with suppress(OSError):
            if shutil.disk_usage(folder).free < FULL_DISK_BYTES:
                return os.strerror(errno.ENOSPC)
    if isinstance(err, OSError):
        return err.strerror or one_line(err)
    return None


def _make_parents(paths: Iterable[Path]) -> list[Path]:
    """Create missing parent folders; return those created, outermost first."""
    created: list[Path] = []
    for path in paths:
        folder = path.parent.absolute()
        for missing in reversed([p for p in (folder, *folder.parents) if not p.exists()]):
            missing.mkdir(exist_ok=True)
            created.append(missing)
    return created


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_if_empty(folder: Path) -> None:
    with suppress(OSError):
        folder.rmdir()


def plain(value: Any) -> Any:
    """Turn nested config values (dataclasses, paths, tuples, numpy scalars) into h5-safe ones."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_h5mu(mdata: mudata.MuData, path: Path) -> None:
    """Write ``mdata`` gzip-compressed; ``uns`` values are made serialisable in place.

    The file is built in memory, then written with plain file I/O: HDF5 does not survive a
    failed write (on a full disk it leaves open objects that crash the interpreter at exit),
    Python's I/O just raises OSError.
    """
    mdata.uns.update(plain(dict(mdata.uns)))
    for adata in mdata.mod.values():
        adata.uns.update(plain(dict(adata.uns)))
    image = io.BytesIO()
    with mudata.set_options(pull_on_update=False), h5py.File(image, "w", userblock_size=512) as f:
        _write_h5mu(f, mdata, compression="gzip")
    data = image.getbuffer()
    header = MUDATA_HEADER.format(mudata.__mudataversion__, mudata.__version__).encode()
    data[: len(header)] = header  # what mudata.write_h5mu puts in the user block
    with open(path, "wb") as handle:
        handle.write(data)


def write_parquet(df: pd.DataFrame, path: Path, metadata: Mapping[str, Any]) -> None:
    """Write ``df`` (zstd) with ``metadata`` as schema key/value pairs; non-str values as JSON."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    encoded = {k: v if isinstance(v, str) else json.dumps(plain(v)) for k, v in metadata.items()}
    merged = dict(table.schema.metadata or {})
    merged.update({k.encode(): v.encode() for k, v in encoded.items()})
    pq.write_table(table.replace_schema_metadata(merged), str(path), compression="zstd")
