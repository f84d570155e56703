"""Clustering quality of an embedding against reference labels (labels never train)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score


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
    """Leiden clusters with the resolution bisected until there are ``k`` clusters."""
    low, high = 0.0, 1.0
    best, best_gap = None, None

    def run(resolution: float) -> np.ndarray:
        sc.tl.leiden(
            adata,
            resolution=resolution,
            random_state=seed,
            key_added="_leiden",
            flavor="igraph",
            n_iterations=2,
            directed=False,
        )
        return adata.obs["_leiden"].to_numpy()

    while True:  # grow the upper bound until it over-clusters
        clusters = run(high)
        n = len(np.unique(clusters))
        if n >= k or high > 64:
            break
        low, high = high, high * 2
    for _ in range(30):
        gap = abs(n - k)
        if best_gap is None or gap < best_gap:
            best, best_gap = clusters, gap
        if n == k:
            break
        mid = (low + high) / 2
        clusters = run(mid)
        n = len(np.unique(clusters))
        if n > k:
            high = mid
        else:
            low = mid
    return best


def knn_accuracy(adata: ad.AnnData, labels: np.ndarray) -> float:
    """Leave-one-out majority vote of each cell's graph neighbours (connectivities)."""
    graph = adata.obsp["distances"].tocsr()
    codes, uniques = pd.factorize(labels)
    votes = np.zeros((graph.shape[0], len(uniques)))
    rows = np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))
    np.add.at(votes, (rows, codes[graph.indices]), 1.0)
    return float((votes.argmax(axis=1) == codes).mean())


def evaluate_embedding(
    embedding: np.ndarray, labels: np.ndarray, config: EvaluationConfig | None = None
) -> dict[str, float]:
    """NMI/ARI of KMeans(k), Leiden(k) (means over seeds), the scI2CL paper protocol
    (2-D UMAP then KMeans, mean over UMAP seeds), silhouette and kNN label accuracy."""
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
    return out
