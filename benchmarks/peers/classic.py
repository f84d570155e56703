"""Classic baselines: RNA PCA, ATAC LSI, concatenated PCA+LSI, and the muon WNN graph.

RNA: normalise to 1e4, log1p, scale, PCA 30. ATAC: binarise, TF-IDF, LSI 31 with the first
(depth) component dropped. WNN: muon's weighted nearest neighbours on RNA PCA + ATAC LSI; it
is a graph, so the harness scores it with Leiden (no KMeans / UMAP on an embedding).
"""

from __future__ import annotations

import mudata as md
import muon as mu
import numpy as np
import scanpy as sc

from benchmarks.peers.common import parse_args, stopwatch, write_embedding, write_graph

N_COMPONENTS = 30


def rna_pca(mdata: md.MuData, seed: int) -> np.ndarray:
    rna = mdata["rna"]
    sc.pp.normalize_total(rna, target_sum=1e4)
    sc.pp.log1p(rna)
    sc.pp.scale(rna, max_value=10)
    sc.tl.pca(rna, n_comps=N_COMPONENTS, random_state=seed)
    return rna.obsm["X_pca"]


def atac_lsi(mdata: md.MuData, seed: int) -> np.ndarray:
    atac = mdata["atac"]
    atac.X = (atac.X > 0).astype(np.float32)
    mu.atac.pp.tfidf(atac, scale_factor=1e4)
    np.random.seed(seed)  # svds' start vector
    mu.atac.tl.lsi(atac, n_comps=N_COMPONENTS + 1)
    atac.obsm["X_lsi"] = atac.obsm["X_lsi"][:, 1:]
    return atac.obsm["X_lsi"]


def concatenated(mdata: md.MuData, seed: int) -> np.ndarray:
    """Each block divided by its total SD so neither modality dominates by scale."""
    blocks = [rna_pca(mdata, seed), atac_lsi(mdata, seed)]
    return np.hstack([b / np.sqrt(b.var(axis=0).sum()) for b in blocks])


def wnn(mdata: md.MuData, seed: int) -> tuple:
    mdata["rna"].obsm["X_pca"] = rna_pca(mdata, seed)
    atac_lsi(mdata, seed)
    sc.pp.neighbors(mdata["rna"], n_neighbors=15, use_rep="X_pca", random_state=seed)
    sc.pp.neighbors(mdata["atac"], n_neighbors=15, use_rep="X_lsi", random_state=seed)
    mu.pp.neighbors(mdata, key_added="wnn", n_neighbors=15, random_state=seed)
    return mdata.obsp["wnn_connectivities"], mdata.obsp["wnn_distances"]


METHODS = {"rna_pca": rna_pca, "atac_lsi": atac_lsi, "concat_pca_lsi": concatenated}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    mdata = md.read_h5mu(args.input)
    record = {"device": "cpu", "threads": args.threads, "epochs": None}
    if args.method == "wnn":
        with stopwatch(record):
            connectivities, distances = wnn(mdata, args.seed)
        write_graph(args.out, connectivities, distances, record)
        return
    with stopwatch(record):
        embedding = METHODS[args.method](mdata, args.seed)
    write_embedding(args.out, embedding, record)


if __name__ == "__main__":
    main()
