"""Score every method's output with sci2cl's own evaluation (one code path for all).

Embeddings go through ``sci2cl.evaluate.evaluate_embedding``. A graph (WNN) has no
embedding, so it gets the same Leiden-with-k search (``_leiden_k``) and kNN accuracy on its
own graph; KMeans, the UMAP protocol and silhouette are not defined for it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp

from sci2cl.evaluate import (
    EvaluationConfig,
    _leiden_k,
    _scores,
    batch_mixing,
    evaluate_embedding,
    knn_accuracy,
)


def graph_adata(connectivities: sp.spmatrix, distances: sp.spmatrix) -> ad.AnnData:
    """An AnnData whose default neighbours are the given graph (as sc.tl.leiden reads it)."""
    adata = ad.AnnData(np.zeros((connectivities.shape[0], 0), np.float32))
    adata.obsp["connectivities"] = sp.csr_matrix(connectivities)
    adata.obsp["distances"] = sp.csr_matrix(distances)
    adata.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": {"method": "precomputed"},
    }
    return adata


def evaluate_graph(
    connectivities: sp.spmatrix,
    distances: sp.spmatrix,
    labels: np.ndarray,
    config: EvaluationConfig | None = None,
) -> dict[str, float]:
    """Leiden(k) NMI/ARI over the seeds and kNN label accuracy of a precomputed graph."""
    config = config or EvaluationConfig()
    labels = np.asarray(labels).astype(str)
    k = len(np.unique(labels))
    adata = graph_adata(connectivities, distances)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.asarray([_scores(labels, _leiden_k(adata, k, s)) for s in config.seeds])
    out = {"n_cells": int(labels.size), "n_labels": int(k)}
    out["leiden_nmi"], out["leiden_ari"] = (float(v) for v in values.mean(axis=0))
    out["leiden_nmi_sd"], out["leiden_ari_sd"] = (float(v) for v in values.std(axis=0))
    out["knn_accuracy"] = knn_accuracy(adata, labels)
    return out


def score_method(
    folder: Path,
    labels: dict[str, np.ndarray],
    keep: np.ndarray,
    configs: dict[str, EvaluationConfig],
) -> dict[str, dict[str, float]]:
    """Metrics per labelling (with its config), on the cells in ``keep`` (a boolean mask)."""
    if (folder / "graph.npz").exists():
        conn = sp.load_npz(folder / "graph.npz").tocsr()[keep][:, keep]
        dist = sp.load_npz(folder / "distances.npz").tocsr()[keep][:, keep]
        return {n: evaluate_graph(conn, dist, y[keep], configs[n]) for n, y in labels.items()}
    x = np.load(folder / "embedding.npy")[keep]
    return {n: evaluate_embedding(x, y[keep], configs[n]) for n, y in labels.items()}


def neighbour_graph(folder: Path, keep: np.ndarray | None = None, seed: int = 0) -> ad.AnnData:
    """The method's 15-NN graph (its own graph for WNN) on the cells in ``keep``."""
    if (folder / "graph.npz").exists():
        conn = sp.load_npz(folder / "graph.npz").tocsr()
        dist = sp.load_npz(folder / "distances.npz").tocsr()
        if keep is not None:
            conn, dist = conn[keep][:, keep], dist[keep][:, keep]
        return graph_adata(conn, dist)
    x = np.load(folder / "embedding.npy")
    x = x if keep is None else x[keep]
    adata = ad.AnnData(np.zeros((x.shape[0], 0), np.float32))
    adata.obsm["X"] = x
    n_neighbors = EvaluationConfig().n_neighbors  # the graph sci2cl evaluate scores
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep="X", random_state=seed)
    return adata


def mixing_scores(
    folder: Path, batches: np.ndarray, labels: np.ndarray, keep: np.ndarray
) -> dict[str, float]:
    """Batch mixing of the libraries (``sci2cl.evaluate.batch_mixing``) on the kept cells."""
    return batch_mixing(neighbour_graph(folder, keep), batches[keep], labels[keep])


def umap_coordinates(folder: Path, seed: int = 0) -> np.ndarray:
    """2-D UMAP of a method's embedding (or of its graph) for the figure grid."""
    adata = neighbour_graph(folder, seed=seed)
    sc.tl.umap(adata, random_state=seed)
    return adata.obsm["X_umap"]
