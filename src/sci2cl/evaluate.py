"""Clustering quality of an embedding against reference labels (labels never train); reading
the embedding back and matching a labels table to its cells."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from sci2cl.errors import InputError, reading
from sci2cl.io.write import EMBEDDING_PREFIX, cell_identity


@dataclass(frozen=True)
class EvaluationConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    umap_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n_neighbors: int = 15
    umap_neighbors: int = 100
    paper_protocol: bool = True
    silhouette_max_cells: int = 5000


def _scores(labels: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    return (
        float(normalized_mutual_info_score(labels, clusters)),
        float(adjusted_rand_score(labels, clusters)),
    )


def _leiden_k(adata: ad.AnnData, k: int, seed: int) -> np.ndarray:
    """Leiden clusters with the resolution bisected until there are ``k`` clusters (else the
    closest number found)."""

    def run(resolution: float) -> tuple[np.ndarray, int]:
        sc.tl.leiden(
            adata,
            resolution=resolution,
            random_state=seed,
            key_added="_leiden",
            flavor="igraph",
            n_iterations=2,
            directed=False,
        )
        clusters = adata.obs["_leiden"].to_numpy()
        return clusters, len(np.unique(clusters))

    low, high = 0.0, 1.0
    clusters, n = run(high)
    while n < k and high <= 64:  # grow the upper bound until it over-clusters
        low, high = high, high * 2
        clusters, n = run(high)
    best, best_gap = clusters, abs(n - k)
    for _ in range(29):
        if n == k:
            break
        mid = (low + high) / 2
        clusters, n = run(mid)
        low, high = (low, mid) if n > k else (mid, high)
        if abs(n - k) < best_gap:
            best, best_gap = clusters, abs(n - k)
    return best


def knn_accuracy(adata: ad.AnnData, labels: np.ndarray) -> float:
    """Leave-one-out majority vote of each cell's kNN-graph neighbours (``obsp["distances"]``)."""
    graph = adata.obsp["distances"].tocsr()
    codes, uniques = pd.factorize(labels)
    votes = np.zeros((graph.shape[0], len(uniques)))
    rows = np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))
    np.add.at(votes, (rows, codes[graph.indices]), 1.0)
    return float((votes.argmax(axis=1) == codes).mean())


def batch_mixing(adata: ad.AnnData, batches: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Batch mixing on the kNN graph of ``adata`` (``sc.pp.neighbors``), beside labels.

    - ``batch_entropy``: entropy of the batches among each cell's neighbours, divided by
      log(n_batches), mean over cells (1: neighbours spread evenly over batches, 0: one batch).
    - ``ilisi``: mean inverse Simpson index of the neighbours' batches (effective number of
      batches around a cell, uniform kNN weights), and ``ilisi_scaled`` = (ilisi-1)/(B-1).
    - ``graph_connectivity``: per label, the fraction of its cells in the largest connected
      component of the kNN graph restricted to that label; mean over labels (scIB).
    """
    codes, uniques = pd.factorize(np.asarray(batches).astype(str))
    n_batches = len(uniques)
    graph = adata.obsp["distances"].tocsr()
    adjacency = sp.csr_matrix((np.ones_like(graph.data), graph.indices, graph.indptr), graph.shape)
    onehot = sp.csr_matrix(
        (np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, n_batches)
    )
    counts = np.asarray((adjacency @ onehot).todense())
    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    simpson = 1.0 / np.maximum((p**2).sum(axis=1), 1e-12)
    out = {"n_batches": int(n_batches)}
    out["batch_entropy"] = float(entropy.mean() / np.log(n_batches)) if n_batches > 1 else 0.0
    out["ilisi"] = float(simpson.mean())
    out["ilisi_scaled"] = float((simpson.mean() - 1) / (n_batches - 1)) if n_batches > 1 else 0.0
    connectivity = adata.obsp["connectivities"].tocsr()
    fractions = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        _, component = connected_components(connectivity[rows][:, rows], directed=False)
        fractions.append(np.bincount(component).max() / rows.size)
    out["graph_connectivity"] = float(np.mean(fractions))
    return out


def evaluate_embedding(
    embedding: np.ndarray,
    labels: np.ndarray,
    config: EvaluationConfig | None = None,
    batches: np.ndarray | None = None,
) -> dict[str, float]:
    """NMI/ARI of KMeans(k), Leiden(k) (means over seeds), the scI2CL paper protocol
    (2-D UMAP then KMeans, mean over UMAP seeds), silhouette and kNN label accuracy; with
    ``batches``, batch mixing metrics too (:func:`batch_mixing`)."""
    config = config or EvaluationConfig()
    labels = np.asarray(labels).astype(str)
    k = len(np.unique(labels))
    x = np.ascontiguousarray(embedding, dtype=np.float32)
    adata = ad.AnnData(np.zeros((x.shape[0], 0), np.float32))
    adata.obsm["X"] = x
    sc.pp.neighbors(adata, n_neighbors=config.n_neighbors, use_rep="X", random_state=0)
    out: dict[str, float] = {"n_cells": int(x.shape[0]), "n_labels": int(k)}
    scores = {"kmeans": [], "leiden": []}
    for seed in config.seeds:
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
        scores["kmeans"].append(_scores(labels, km))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores["leiden"].append(_scores(labels, _leiden_k(adata, k, seed)))
    if config.paper_protocol:
        import umap

        scores["umap_kmeans"] = []
        for seed in config.umap_seeds:
            coords = umap.UMAP(
                n_neighbors=min(config.umap_neighbors, x.shape[0] - 1),
                n_components=2,
                random_state=seed,
            ).fit_transform(x)
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(coords)
            scores["umap_kmeans"].append(_scores(labels, km))
    for name, values in scores.items():
        arr = np.asarray(values)
        out[f"{name}_nmi"], out[f"{name}_ari"] = (float(v) for v in arr.mean(axis=0))
        out[f"{name}_nmi_sd"], out[f"{name}_ari_sd"] = (float(v) for v in arr.std(axis=0))
    rng = np.random.default_rng(0)
    sample = rng.choice(x.shape[0], min(config.silhouette_max_cells, x.shape[0]), replace=False)
    out["silhouette"] = float(silhouette_score(x[sample], labels[sample]))
    out["knn_accuracy"] = knn_accuracy(adata, labels)
    if batches is not None:
        out.update(batch_mixing(adata, batches, labels))
    return out


# --- the embedding and the labels of its cells ---------------------------------------------


def read_embeddings(path: Path, obsm_key: str = "X_sci2cl") -> tuple[pd.DataFrame, np.ndarray]:
    """Cell identities (barcode, sample) and the embedding of a sci2cl ``.embeddings.parquet``
    or ``.h5mu``."""
    if not path.exists():
        raise InputError(path, "no such file")
    if path.suffix == ".parquet":
        # pyarrow: ArrowInvalid is a ValueError
        with reading(path, "unreadable Parquet file ({})", (OSError, ValueError)):
            table = pd.read_parquet(path)
        cols = [c for c in table.columns if c.removeprefix(EMBEDDING_PREFIX).isdigit()]
        cols.sort(key=lambda c: int(c[len(EMBEDDING_PREFIX) :]))
        if not cols or "barcode" not in table:
            raise InputError(path, f"no barcode / {EMBEDDING_PREFIX}<n> columns")
        ident = table[["barcode"]].assign(sample=table.get("sample", "sample"))
        return ident.astype(str), table[cols].to_numpy(np.float32)
    # h5py and anndata report unreadable HDF5 as OSError
    with reading(path, "unreadable h5mu file ({})", (OSError,)):
        mdata = md.read_h5mu(path)
    if obsm_key not in mdata.obsm:
        raise InputError(path, f"no obsm[{obsm_key!r}] embedding")
    return cell_identity(mdata), np.asarray(mdata.obsm[obsm_key], dtype=np.float32)


def read_label_table(labels_csv: Path) -> pd.DataFrame:
    """The labels CSV, indexed by its first column as strings (barcodes, or
    ``sample:barcode`` for several samples)."""
    if not labels_csv.exists():
        raise InputError(labels_csv, "no such file")
    # pandas: ParserError, EmptyDataError, UnicodeDecodeError are ValueErrors
    with reading(labels_csv, "unreadable CSV ({})", (OSError, ValueError)):
        table = pd.read_csv(labels_csv, index_col=0)
    table.index = table.index.astype(str)
    if table.index.has_duplicates:
        repeated = table.index[table.index.duplicated()]
        raise InputError(
            labels_csv, f"{repeated.nunique()} cells have several rows (e.g. {repeated[0]})"
        )
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


def labelled_cells(
    identity: pd.DataFrame,
    path: Path,
    column: str,
    exclude: tuple[str, ...] = (),
    batch_column: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rows of the embedding with a label in ``column`` of the labels CSV at ``path`` (not one
    of ``exclude``), their labels and, given ``batch_column``, their batches: that column of the
    CSV, or the embedding's own ``sample`` column for ``sample`` when the CSV has none."""
    table = read_label_table(path)
    values = _per_cell(identity, table, column, path)
    keep = values.notna().to_numpy() & ~values.astype(str).isin(exclude).to_numpy()
    if keep.sum() < 2:
        raise InputError(path, "fewer than two embedded cells have a usable label")
    rows, labels = np.flatnonzero(keep), values.to_numpy()[keep].astype(str)
    if not batch_column:
        return rows, labels, None
    if batch_column == "sample" and batch_column not in table:
        return rows, labels, identity["sample"].to_numpy()[rows]
    batches = _per_cell(identity, table, batch_column, path).iloc[rows]
    if batches.isna().any():
        raise InputError(path, f"column {batch_column!r} is empty for some labelled cells")
    return rows, labels, batches.astype(str).to_numpy()
