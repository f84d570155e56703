"""Everything sci2cl writes: which files, in which order, written atomically; figures; MultiQC
custom content.

A training run writes ``PREFIX`` + :data:`MODEL` first (the trained model is never lost to a
later failure), then :data:`RESULTS` as one group (the embeddings table, the annotated MuData,
the loss history: all or none), then each of :data:`FIGURES` on a best-effort basis (a figure
that fails warns and is skipped). Every file is written under a temporary name and renamed
when complete (:func:`staged_outputs`).
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import mudata as md
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from anndata.io import read_elem
from mudata._core.io import _write_h5mu  # writes into an open h5py.File

from sci2cl import __version__
from sci2cl.errors import InputError, Sci2clError, Sci2clWarning, one_line, reading
from sci2cl.io.read import MODALITY_FEATURE_TYPES

MODEL = ".model.pt"
RESULTS = (".embeddings.parquet", ".h5mu", ".history.csv")
FIGURES = (".umap.png", ".losses.png")
PREPARED = ".prepared.h5mu"
EMBEDDING_PREFIX = "sci2cl_"
OBSM_KEYS = {"joint": "X_sci2cl", "rna": "X_sci2cl_rna", "atac": "X_sci2cl_atac"}
LEIDEN = "sci2cl_leiden"
UMAP = "X_umap"
MUDATA_HEADER = "MuData (format-version={};creator=muon;creator-version={})"
FULL_DISK_BYTES = 1 << 20  # less free space than this after a failed write: the disk is full


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


def estimated_bytes(mdata: md.MuData, model: Any = None) -> int:
    """About what writing ``mdata`` takes (its counts: 8 bytes per non-zero before
    compression), plus, given the model's configuration, the embeddings and the model file."""
    x = [mdata[m].X for m in MODALITY_FEATURE_TYPES]
    total = 8 * sum(m.nnz if sp.issparse(m) else m.size for m in x)
    if model is not None:
        n_features = sum(m.shape[1] for m in x)
        total += mdata.n_obs * 4 * model.latent_dim * 4 * 2  # joint + 2 modalities, 2 files
        total += n_features * 4 * (model.hidden_dims[0] + 3 * model.hidden_dims[-1])
    return total


# --- atomic writing ------------------------------------------------------------------------


@contextmanager
def staged_outputs(finals: Mapping[str, Path]) -> Iterator[dict[str, Path]]:
    """Yield temporary paths for ``finals``; rename all on success, delete all on error.

    Temporaries are hidden siblings of their final names (same file system: renames are
    atomic). Missing parent folders are created, and removed again on failure when left empty.
    A failure caused by the output location (full disk, permissions, a file where a folder
    should be) becomes a :class:`Sci2clError` naming the outputs.
    """
    finals = {key: Path(path) for key, path in finals.items()}
    names = _shorthand([str(path) for path in finals.values()])
    try:
        created = _make_parents(finals.values())
    except OSError as err:
        raise Sci2clError(f"{names}: cannot write output ({_problem(err, None)})") from err
    temps = {key: p.parent / f".{p.name}.tmp-{os.getpid()}" for key, p in finals.items()}
    try:
        yield dict(temps)
        missing = [str(finals[k]) for k, t in temps.items() if not t.exists()]
        if missing:
            raise RuntimeError(f"outputs were not written: {', '.join(missing)}")
    except BaseException as err:
        folder = next(iter(finals.values())).parent
        problem = _problem(err, folder) if isinstance(err, Exception) else None  # disk still full
        for temp in temps.values():
            temp.unlink(missing_ok=True)
        for folder in reversed(created):
            with suppress(OSError):
                folder.rmdir()  # only when left empty
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


def plain(value: Any) -> Any:
    """Turn nested config values (dataclasses, paths, tuples, numpy scalars) into h5-safe ones."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def json_value(value: Any) -> Any:
    """``json.dumps`` default: numpy values as Python ones, anything else as its string."""
    return value.tolist() if isinstance(value, np.generic | np.ndarray) else str(value)


def write_h5mu(mdata: md.MuData, path: Path) -> None:
    """Write ``mdata`` gzip-compressed; ``uns`` values are made serialisable in place.

    The file is built in memory, then written with plain file I/O: HDF5 does not survive a
    failed write (on a full disk it leaves open objects that crash the interpreter at exit),
    Python's I/O just raises OSError.
    """
    for uns in (mdata.uns, *(adata.uns for adata in mdata.mod.values())):
        uns.update(plain(dict(uns)))
    image = io.BytesIO()
    with md.set_options(pull_on_update=False), h5py.File(image, "w", userblock_size=512) as f:
        _write_h5mu(f, mdata, compression="gzip")
    data = image.getbuffer()
    header = MUDATA_HEADER.format(md.__mudataversion__, md.__version__).encode()
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


# --- the results of a trained model --------------------------------------------------------


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


# --- MultiQC custom content ----------------------------------------------------------------
# Only ``uns`` and a few ``obs`` / ``obsm`` entries of the h5mu files are read, never the counts.

QC_COLUMNS = {
    "n_cells_in": "Cells in",
    "n_cells_out": "Cells kept",
    "n_genes_in": "Genes in",
    "n_genes_out": "Genes kept",
    "n_genes_selected": "Genes selected",
    "n_peaks_in": "Peaks in",
    "n_peaks_out": "Peaks kept",
    "n_peaks_selected": "Peaks selected",
}
SECTIONS = {  # id: plot type, name, description, plot configuration
    "sci2cl_prepare": (
        "table",
        "per-sample QC",
        "Cells and features per sample before and after `sci2cl prepare` (cell QC, feature "
        "filtering, then feature selection for the model).",
        dict(id="sci2cl_prepare_table", title="sci2cl prepare", col1_header="Sample"),
    ),
    "sci2cl_prepare_cells": (
        "bargraph",
        "cells kept and removed",
        "Cells per sample kept by `sci2cl prepare`, and removed by each QC rule.",
        dict(id="sci2cl_prepare_cells_plot", title="sci2cl: cells", ylab="Cells"),
    ),
    "sci2cl_embedding": (
        "table",
        "embedding",
        "One row per trained model: cells embedded, joint embedding dimensions, samples, "
        "training epochs, whether the fusion check kept the cross-attention residual, and "
        "Leiden clusters on the joint graph (when written).",
        dict(id="sci2cl_embedding_table", title="sci2cl embedding", col1_header="Model"),
    ),
    "sci2cl_training": (
        "linegraph",
        "training curves",
        "Weighted total loss per epoch on the training cells and on held-out validation "
        "cells (reconstruction-only warm-up first, then all losses).",
        dict(id="sci2cl_training_plot", title="sci2cl: loss per epoch", xlab="Epoch", ylab="Loss"),
    ),
}


def write_multiqc_content(inputs: Iterable[Path], outdir: Path) -> list[Path]:
    """MultiQC custom content (``*_mqc.json`` / ``*_mqc.png`` in ``outdir``) from prepared h5mu
    files (per-sample QC), trained h5mu files (embedding summary), ``*.history.csv`` (training
    curves) and UMAP PNGs; returns the files written. Everything is read before anything is
    written."""
    inputs = sorted({Path(p) for p in inputs}, key=lambda p: p.name)
    prepared = [p for p in inputs if p.name.endswith(PREPARED)]
    trained = [p for p in inputs if p.suffix == ".h5mu" and p not in prepared]
    histories = [p for p in inputs if p.name.endswith(".history.csv")]
    qc = {p.name.removesuffix(PREPARED): _prepare_qc(p) for p in prepared}
    data = {  # sections without inputs are left out
        "sci2cl_prepare": {s: {k: int(r[k]) for k in QC_COLUMNS if k in r} for s, r in qc.items()},
        "sci2cl_prepare_cells": {
            sample: {
                "kept": int(record["n_cells_out"]),
                **{f"removed: {r}": int(n) for r, n in record.get("cells_removed", {}).items()},
            }
            for sample, record in qc.items()
        },
        "sci2cl_embedding": {p.name.removesuffix(".h5mu"): _embedding_summary(p) for p in trained},
        "sci2cl_training": {
            f"{p.name.removesuffix('.history.csv')} ({split})": curve
            for p in histories
            for split, curve in _loss_curves(p).items()
        },
    }
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, values in ((name, values) for name, values in data.items() if values):
        plot_type, title, description, pconfig = SECTIONS[name]
        section = {
            "id": name,
            "section_name": f"sci2cl: {title}",
            "description": description,
            "plot_type": plot_type,
            "pconfig": pconfig,
            "data": values,
        }
        if name == "sci2cl_prepare":
            section["headers"] = {
                k: {"title": t, "format": "{:,.0f}"} for k, t in QC_COLUMNS.items()
            }
        written.append(outdir / f"{name}_mqc.json")
        written[-1].write_text(json.dumps(section, indent=1, default=json_value) + "\n")
    for png in (p for p in inputs if p.suffix == ".png" and "umap" in p.name):
        written.append(outdir / f"sci2cl_{png.stem.replace('.', '_')}_mqc.png")
        shutil.copyfile(png, written[-1])
    return written


@contextmanager
def _h5(path: Path) -> Iterator[h5py.File]:
    """``path`` open for reading; what h5py raises on a bad file becomes an InputError."""
    with reading(path, "cannot read h5mu: {}", (OSError, KeyError)), h5py.File(path) as handle:
        yield handle


def _sci2cl_uns(handle: h5py.File) -> dict[str, Any]:
    return (read_elem(handle["uns"]) if "uns" in handle else {}).get("sci2cl", {})


def _prepare_qc(path: Path) -> dict[str, Any]:
    with _h5(path) as handle:
        record = _sci2cl_uns(handle).get("prepare")
    if record is None:
        raise InputError(path, "no uns['sci2cl']['prepare']: not written by sci2cl prepare")
    return record


def _embedding_summary(path: Path) -> dict[str, Any]:
    key = f"obsm/{OBSM_KEYS['joint']}"
    with _h5(path) as handle:
        if key not in handle:
            raise InputError(path, f"no obsm['{OBSM_KEYS['joint']}']: not a trained sci2cl h5mu")
        obs = handle["obs"]
        samples, clusters = (
            pd.Series(read_elem(obs[c])) if c in obs else None for c in ("sample", LEIDEN)
        )
        n_cells, n_dims = handle[key].shape
        uns = _sci2cl_uns(handle)
    params = uns.get("params", {})
    fusion = params.get("fusion_check", {})
    row: dict[str, Any] = {
        "cells": int(n_cells),
        "dimensions": int(n_dims),
        "samples": int(samples.nunique()) if samples is not None else 1,
        "epochs_run": params.get("epochs_run"),
        "best_epoch": params.get("best_epoch"),
        "cross_attention_kept": fusion.get("residual_kept") if fusion.get("tested") else None,
        "leiden_clusters": int(clusters.nunique()) if clusters is not None else None,
    }
    return {key: plain(value) for key, value in row.items() if value is not None}


def _loss_curves(path: Path) -> dict[str, dict[int, float]]:
    """Total loss by epoch of a ``.history.csv``, per split (``train``, ``val``)."""
    with reading(path, "cannot read training history: {}", (OSError, ValueError)):
        history = pd.read_csv(path)
    if "epoch" not in history or "train_loss" not in history:
        raise InputError(path, "not a sci2cl history (no 'epoch' and 'train_loss' columns)")
    curves = {}
    for split in ("train", "val"):
        if f"{split}_loss" in history:
            values = history[["epoch", f"{split}_loss"]].dropna().to_numpy()
            curves[split] = {int(e): float(v) for e, v in values}
    return curves
