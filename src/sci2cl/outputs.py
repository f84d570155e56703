"""What sci2cl writes, in which order, and how it reads its embeddings back.

A training run writes ``PREFIX`` + :data:`MODEL` first (the trained model is never lost to a
later failure), then :data:`RESULTS` as one group (the embeddings table, the annotated MuData,
the loss history: all or none), then each of :data:`FIGURES` on a best-effort basis (a figure
that fails warns and is skipped). Every file is written under a temporary name and renamed
when complete (:func:`sci2cl.io.staged_outputs`).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from sci2cl import __version__
from sci2cl.data import MODALITIES
from sci2cl.errors import InputError, Sci2clError, Sci2clWarning, one_line
from sci2cl.io import staged_outputs, write_h5mu, write_parquet
from sci2cl.model import ModelConfig

MODEL = ".model.pt"
RESULTS = (".embeddings.parquet", ".h5mu", ".history.csv")
FIGURES = (".umap.png", ".losses.png")
EMBEDDING_PREFIX = "sci2cl_"
OBSM_KEYS = {"joint": "X_sci2cl", "rna": "X_sci2cl_rna", "atac": "X_sci2cl_atac"}
LEIDEN = "sci2cl_leiden"
UMAP = "X_umap"


def output_paths(prefix: str | Path, trained: bool = True, figures: bool = True) -> dict[str, Path]:
    """``prefix`` + each suffix written: model, results and figures after training; the
    embeddings table and MuData only for cells mapped into an existing model."""
    suffixes = (MODEL, *RESULTS, *(FIGURES if figures else ())) if trained else RESULTS[:2]
    return {s: Path(f"{prefix}{s}") for s in suffixes}


# --- before the work -----------------------------------------------------------------------


def check_writable(paths: Iterable[str | Path], needed_bytes: int = 0) -> None:
    """Sci2clError unless every path can be written: it is no folder, its nearest existing
    folder is a writable folder with ``needed_bytes`` free."""
    for path in map(Path, paths):
        folder = next(p for p in path.absolute().parents if p.exists())
        why = (
            f"{path} is a folder" if path.is_dir()
            else f"{folder} is not a folder" if not folder.is_dir()
            else f"{folder} is not writable" if not os.access(folder, os.W_OK | os.X_OK)
            else None
        )  # fmt: skip
        if why:
            raise Sci2clError(f"{path}: cannot write output ({why})")
        if (free := shutil.disk_usage(folder).free) < needed_bytes:
            raise Sci2clError(
                f"{path}: not enough free space ({free / 1e6:.0f} MB free, outputs need about "
                f"{needed_bytes / 1e6:.0f} MB)"
            )


def estimated_bytes(mdata: md.MuData, model: ModelConfig | None = None) -> int:
    """About what writing ``mdata`` takes (its counts: 8 bytes per non-zero before
    compression), plus, given the model's configuration, the embeddings and the model file."""
    x = [mdata[m].X for m in MODALITIES]
    total = 8 * sum(m.nnz if sp.issparse(m) else m.size for m in x)
    if model is not None:
        n_features = sum(m.shape[1] for m in x)
        total += mdata.n_obs * 4 * model.latent_dim * 4 * 2  # joint + 2 modalities, 2 files
        total += n_features * 4 * (model.hidden_dims[0] + 3 * model.hidden_dims[-1])
    return total


# --- assembling ----------------------------------------------------------------------------


def cell_identity(mdata: md.MuData) -> pd.DataFrame:
    """``barcode`` and ``sample`` per cell (from prepare's columns, else obs_names / 'sample')."""
    obs = mdata.obs
    barcode = obs["barcode"] if "barcode" in obs else pd.Series(mdata.obs_names, index=obs.index)
    sample = obs["sample"] if "sample" in obs else pd.Series("sample", index=obs.index)
    return pd.DataFrame(
        {"barcode": barcode.astype(str).to_numpy(), "sample": sample.astype(str).to_numpy()}
    )


def leiden_and_umap(joint: np.ndarray, seed: int) -> tuple[pd.Categorical, np.ndarray]:
    """Leiden clusters (resolution 1) and a 2-D UMAP of the joint embedding's kNN graph."""
    import scanpy as sc

    n = joint.shape[0]
    if n < 3:  # no neighbourhood graph to speak of
        return pd.Categorical(["0"] * n), np.zeros((n, 2), np.float32)
    adata = ad.AnnData(np.zeros((n, 0), np.float32))
    adata.obsm["X"] = joint
    sc.pp.neighbors(adata, n_neighbors=min(15, n - 1), use_rep="X", random_state=seed)
    sc.tl.leiden(adata, random_state=seed, flavor="igraph", n_iterations=2, directed=False)
    sc.tl.umap(adata, random_state=seed)
    return adata.obs["leiden"].array, adata.obsm["X_umap"].astype(np.float32)


def annotate(
    mdata: md.MuData, embeddings: dict[str, np.ndarray], params: dict, history: list[dict]
) -> md.MuData:
    """Copy of ``mdata`` with the embeddings in ``obsm`` (:data:`OBSM_KEYS`), Leiden clusters
    of the joint kNN graph in ``obs['sci2cl_leiden']``, its UMAP in ``obsm['X_umap']``, and
    params + loss history in ``uns['sci2cl']``."""
    out = mdata.copy()
    for key, obsm_key in OBSM_KEYS.items():
        out.obsm[obsm_key] = embeddings[key].astype(np.float32)
    seed = int(params.get("train", {}).get("seed", 0))
    out.obs[LEIDEN], out.obsm[UMAP] = leiden_and_umap(embeddings["joint"], seed)
    hist = pd.DataFrame.from_records(history)
    out.uns["sci2cl"] = {
        **dict(out.uns.get("sci2cl", {})),
        "version": __version__,
        "params": json.loads(json.dumps(params, default=str)),
        "history": {c: hist[c].to_numpy() for c in hist.columns},
    }
    return out


def embedding_table(annotated: md.MuData) -> pd.DataFrame:
    """One row per cell: ``barcode``, ``sample``, ``sci2cl_leiden`` (string) and
    ``sci2cl_0 .. sci2cl_{d-1}`` (float32)."""
    joint = np.asarray(annotated.obsm[OBSM_KEYS["joint"]], dtype=np.float32)
    columns = {LEIDEN: annotated.obs[LEIDEN].astype(str).to_numpy()}
    columns.update({f"{EMBEDDING_PREFIX}{i}": joint[:, i] for i in range(joint.shape[1])})
    return pd.concat([cell_identity(annotated), pd.DataFrame(columns)], axis=1)


# --- writing -------------------------------------------------------------------------------


def write_results(annotated: md.MuData, history: list[dict], paths: dict[str, Path]) -> None:
    """The embeddings table, the annotated MuData and (when in ``paths``) the loss history:
    all written, or none."""
    params = annotated.uns["sci2cl"]["params"]
    metadata = {"sci2cl_version": __version__, "sci2cl_params": json.dumps(params, default=str)}
    with staged_outputs(paths) as temp:
        write_parquet(embedding_table(annotated), temp[".embeddings.parquet"], metadata)
        write_h5mu(annotated, temp[".h5mu"])
        if ".history.csv" in temp:
            pd.DataFrame.from_records(history).to_csv(temp[".history.csv"], index=False)


def write_figures(annotated: md.MuData, history: list[dict], paths: dict[str, Path]) -> list[Path]:
    """Each figure on its own; one that fails warns (:class:`Sci2clWarning`) and is skipped.
    Returns the figures written."""
    draw: dict[str, Callable[[Path], None]] = {
        ".umap.png": lambda path: plot_umap(annotated, path),
        ".losses.png": lambda path: plot_losses(pd.DataFrame.from_records(history), path),
    }
    written = []
    for suffix, path in paths.items():
        try:
            with staged_outputs({suffix: path}) as temp:
                draw[suffix](temp[suffix])
        except Exception as err:  # noqa: BLE001 - figures are best effort: never fail the run
            warnings.warn(
                f"{path}: figure not written ({type(err).__name__}: {one_line(err)})",
                Sci2clWarning,
                stacklevel=2,
            )
        else:
            written.append(path)
    return written


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_losses(history: pd.DataFrame, path: Path) -> None:
    """One panel per loss term, train and validation curves against epoch."""
    plt = _pyplot()
    terms = [c[len("train_") :] for c in history.columns if c.startswith("train_")]
    cols = min(4, len(terms))
    rows = int(np.ceil(len(terms) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms, strict=False):
        for split in ("train", "val"):
            if f"{split}_{term}" in history:
                ax.plot(history["epoch"], history[f"{split}_{term}"], label=split)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    for ax in list(axes.flat)[len(terms) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def plot_umap(annotated: md.MuData, path: Path) -> None:
    """The UMAP of the joint embedding, coloured by Leiden cluster and by sample."""
    import scanpy as sc

    obs = pd.DataFrame({"Leiden cluster": annotated.obs[LEIDEN].to_numpy()})
    obs["sample"] = pd.Categorical(cell_identity(annotated)["sample"])
    cells = ad.AnnData(obs=obs, obsm={UMAP: np.asarray(annotated.obsm[UMAP])})
    fig = sc.pl.umap(cells, color=list(obs), return_fig=True, show=False, frameon=False)
    fig.savefig(path, dpi=110, format="png", bbox_inches="tight")
    _pyplot().close(fig)


# --- reading back --------------------------------------------------------------------------


def read_embeddings(path: Path, obsm_key: str = "X_sci2cl") -> tuple[pd.DataFrame, np.ndarray]:
    """Cell identities (barcode, sample) and the embedding of a sci2cl ``.embeddings.parquet``
    or ``.h5mu``."""
    if not path.exists():
        raise InputError(path, "no such file")
    if path.suffix == ".parquet":
        try:
            table = pd.read_parquet(path)
        except (OSError, ValueError) as err:  # pyarrow: ArrowInvalid is a ValueError
            raise InputError(path, f"unreadable Parquet file ({one_line(err)})") from None
        cols = [c for c in table.columns if c.removeprefix(EMBEDDING_PREFIX).isdigit()]
        cols.sort(key=lambda c: int(c[len(EMBEDDING_PREFIX) :]))
        if not cols or "barcode" not in table:
            raise InputError(path, f"no barcode / {EMBEDDING_PREFIX}<n> columns")
        ident = table[["barcode"]].assign(sample=table.get("sample", "sample"))
        return ident.astype(str), table[cols].to_numpy(np.float32)
    try:
        mdata = md.read_h5mu(path)
    except OSError as err:  # h5py and anndata report unreadable HDF5 as OSError
        raise InputError(path, f"unreadable h5mu file ({one_line(err)})") from None
    if obsm_key not in mdata.obsm:
        raise InputError(path, f"no obsm[{obsm_key!r}] embedding")
    return cell_identity(mdata), np.asarray(mdata.obsm[obsm_key], dtype=np.float32)
