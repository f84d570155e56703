"""Read embeddings (h5mu or parquet) and attach reference labels for evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sci2cl.errors import InputError
from sci2cl.results import EMBEDDING_PREFIX, cell_identity


def read_embedding(path: Path, obsm_key: str = "X_sci2cl") -> tuple[pd.DataFrame, np.ndarray]:
    """Cell identities (barcode, sample) and the embedding matrix of a sci2cl output."""
    if not path.exists():
        raise InputError(path, "no such file")
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
            cols = [c for c in table.columns if c.startswith(EMBEDDING_PREFIX)]
            cols.sort(key=lambda c: int(c[len(EMBEDDING_PREFIX) :]))
            if not cols or "barcode" not in table:
                raise InputError(path, f"no barcode / {EMBEDDING_PREFIX}* columns")
            ident = table[["barcode"]].assign(sample=table.get("sample", "sample"))
            return ident.astype(str), table[cols].to_numpy(np.float32)
        import mudata as md

        mdata = md.read_h5mu(path)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - unreadable file, one-line message
        raise InputError(path, f"unreadable ({type(err).__name__}: {err})") from None
    if obsm_key not in mdata.obsm:
        raise InputError(path, f"no obsm[{obsm_key!r}] embedding")
    ident = cell_identity(mdata)
    return ident, np.asarray(mdata.obsm[obsm_key], dtype=np.float32)


def read_label_table(labels_csv: Path) -> pd.DataFrame:
    """The labels CSV, indexed by its first column as strings (barcodes, or
    ``sample:barcode`` for several samples)."""
    if not labels_csv.exists():
        raise InputError(labels_csv, "no such file")
    try:
        table = pd.read_csv(labels_csv, index_col=0)
    except Exception as err:  # noqa: BLE001
        raise InputError(labels_csv, f"unreadable CSV ({type(err).__name__})") from None
    table.index = table.index.astype(str)
    return table


def _per_cell(identity: pd.DataFrame, table: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """``column`` of ``table`` for every embedded cell (NaN where the CSV has no row),
    matched on barcodes, else on ``sample:barcode``."""
    if column not in table:
        raise InputError(path, f"no column {column!r} (have: {', '.join(map(str, table.columns))})")
    keys = identity["barcode"]
    if not keys.isin(table.index).any():
        keys = identity["sample"] + ":" + identity["barcode"]
    return table[column].reindex(keys.to_numpy())


def match_labels(
    identity: pd.DataFrame, table: pd.DataFrame, column: str, exclude: tuple[str, ...], path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the embedding that have a label (not excluded) and their labels."""
    values = _per_cell(identity, table, column, path)
    keep = values.notna().to_numpy() & ~values.astype(str).isin(exclude).to_numpy()
    if keep.sum() < 2:
        raise InputError(path, "fewer than two embedded cells have a usable label")
    return np.flatnonzero(keep), values.to_numpy()[keep].astype(str)


def match_batches(
    identity: pd.DataFrame, rows: np.ndarray, table: pd.DataFrame, column: str, path: Path
) -> np.ndarray:
    """Batch of each labelled row: ``column`` of the labels table, or the embedding's own
    ``sample`` column when ``column`` is ``sample`` and the table has no such column."""
    if column == "sample" and column not in table:
        return identity["sample"].to_numpy()[rows]
    values = _per_cell(identity, table, column, path).iloc[rows]
    if values.isna().any():
        raise InputError(path, f"column {column!r} is empty for some labelled cells")
    return values.astype(str).to_numpy()
