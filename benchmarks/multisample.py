"""Multi-sample integration on real data: SNARE-seq cortex split into its 12 libraries.

Each library (``Batch`` 09A..09L) becomes a sample with its own peak set, perturbed to mimic
Cell Ranger ARC's per-sample peak calling: every peak's boundaries move by up to a quarter of
its width and ~10% of the peaks are dropped (their counts are lost, as reads outside a
sample's called peaks are). The samples are prepared one by one, then compared:

- ``single``: one model on the unsplit data (the reference);
- ``joint`` (negatives from any sample), ``joint_within`` (negatives from the same sample)
  and ``joint_common`` (genes of all samples only): one model on the 12 samples (merged peaks,
  sample-conditioned decoders);
- ``concat``: one model per sample, embeddings stacked.

NMI/ARI against ``cluster (remapped)`` (without ``Mis``) and batch mixing on the same cells.

    python -m benchmarks.multisample --data ../shared/data --out /tmp/multisample --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import torch

from benchmarks.datasets import load_snare
from sci2cl.api import fit
from sci2cl.embed import embed
from sci2cl.evaluate import EvaluationConfig, evaluate_embedding
from sci2cl.io import assemble_multiome
from sci2cl.model import ModelConfig
from sci2cl.peaks import parse_intervals
from sci2cl.preprocess import PrepareConfig, prepare
from sci2cl.samples import combine_samples
from sci2cl.train import TrainConfig

LABEL, EXCLUDE, BATCH = "cluster (remapped)", ("Mis",), "Batch"
JOINT = {  # run name: (genes, negatives)
    "joint": ("union", "any"),
    "joint_within": ("union", "within_sample"),
    "joint_common": ("common", "any"),
}


def perturbed_library(
    mdata: md.MuData, cells: np.ndarray, rng: np.random.Generator, drop: float = 0.1
) -> md.MuData:
    """The cells ``cells`` with a per-sample peak set (jittered boundaries, dropped peaks)."""
    rna, atac = mdata["rna"][cells].copy(), mdata["atac"][cells].copy()
    peaks = parse_intervals(atac.var["interval"])
    width = peaks.end - peaks.start
    shift = np.maximum(width // 4, 1)
    start = np.maximum(peaks.start + rng.integers(-shift, shift + 1), 0)
    end = np.maximum(peaks.end + rng.integers(-shift, shift + 1), start + 10)
    keep = rng.random(len(peaks)) >= drop
    names = [f"{c}:{s}-{e}" for c, s, e in zip(peaks.chrom, start, end, strict=True)]
    atac.var_names = pd.Index(names)
    atac.var["interval"] = names
    atac = atac[:, keep].copy()
    atac.var_names_make_unique()
    return assemble_multiome(rna, atac)


def split_libraries(mdata: md.MuData, meta: pd.DataFrame, seed: int) -> dict[str, md.MuData]:
    rng = np.random.default_rng(seed)
    batches = meta.loc[mdata.obs_names, BATCH].astype(str).to_numpy()
    return {
        b: perturbed_library(mdata, np.flatnonzero(batches == b), rng) for b in np.unique(batches)
    }


def run_fit(mdata: md.MuData, model: ModelConfig, train: TrainConfig) -> tuple[pd.DataFrame, dict]:
    start = time.perf_counter()

    def progress(record: dict) -> None:
        print(
            f"  epoch {record['epoch']} ({record['stage']}) {time.perf_counter() - start:.0f}s "
            f"val_loss={record.get('val_loss', float('nan')):.4f}",
            flush=True,
        )

    trained, result, data = fit(mdata, model, train, on_epoch=progress)
    joint = embed(trained.module, data, device=train.device)["joint"]
    seconds = time.perf_counter() - start
    sample = mdata.obs["sample"].astype(str).to_numpy()
    barcode = mdata.obs["barcode"].astype(str).to_numpy()
    frame = pd.DataFrame(joint, index=pd.Index(barcode, name="barcode"))
    frame.insert(0, "sample", sample)
    info = {
        "wall_s": seconds,
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "residual_kept": result.fusion_residual_kept,  # fusion check verdict (None: not run)
    }
    return frame, info


def score(frame: pd.DataFrame, meta: pd.DataFrame, seeds: tuple[int, ...]) -> dict:
    labels = meta.loc[frame.index, LABEL].astype(str).to_numpy()
    batches = meta.loc[frame.index, BATCH].astype(str).to_numpy()
    keep = ~np.isin(labels, EXCLUDE)
    x = frame.drop(columns="sample").to_numpy(np.float32)[keep]
    config = EvaluationConfig(seeds=seeds, paper_protocol=False)
    return evaluate_embedding(x, labels[keep], config, batches[keep])


def umap_figure(frames: dict[str, pd.DataFrame], meta: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sci2cl.io.write import leiden_and_umap

    fig, axes = plt.subplots(2, len(frames), figsize=(4.2 * len(frames), 8.4), squeeze=False)
    for col, (name, frame) in enumerate(frames.items()):
        _, coords = leiden_and_umap(frame.drop(columns="sample").to_numpy(np.float32), 0)
        for row, column in enumerate((BATCH, LABEL)):
            ax = axes[row, col]
            values = meta.loc[frame.index, column].astype(str)
            for value in sorted(values.unique()):
                mask = (values == value).to_numpy()
                ax.scatter(*coords[mask].T, s=1, label=value, rasterized=True)
            ax.set_title(f"{name}: {'library' if column == BATCH else 'cell type'}")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == len(frames) - 1:
                ax.legend(markerscale=6, fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


RUN_NOTES = {
    "single": "one model, unsplit data (reference)",
    "joint": "one model, 12 samples; negatives from any sample",
    "joint_within": "one model, 12 samples; negatives within sample",
    "joint_common": "one model, 12 samples; common genes only",
    "concat": "12 models, embeddings stacked",
}


def render(out: Path) -> str:
    """Markdown table of ``out/summary.json``."""
    results = json.loads((out / "summary.json").read_text())
    lines = [
        "| run | what | Leiden NMI | Leiden ARI | KMeans NMI | KMeans ARI | batch entropy "
        "| iLISI (of 12) | graph conn. | kNN acc. | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {RUN_NOTES.get(name, '')} | {r['leiden_nmi']:.3f} | {r['leiden_ari']:.3f}"
            f" | {r['kmeans_nmi']:.3f} | {r['kmeans_ari']:.3f} | {r['batch_entropy']:.3f}"
            f" | {r['ilisi']:.2f} | {r['graph_connectivity']:.3f} | {r['knn_accuracy']:.3f}"
            f" | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--warmup-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=3, help="KMeans / Leiden seeds")
    parser.add_argument("--render", action="store_true", help="only print OUT's table")
    parser.add_argument(
        "--runs",
        default="single,joint,joint_within,joint_common,concat",
        help="comma-separated subset",
    )
    args = parser.parse_args()
    if args.render:
        print(render(args.out), end="")
        return
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = args.runs.split(",")
    model = ModelConfig()
    train = TrainConfig(
        max_epochs=args.max_epochs, warmup_epochs=args.warmup_epochs, seed=args.seed, device="cpu"
    )
    seeds = tuple(range(args.seeds))
    prep = PrepareConfig()

    raw, meta = load_snare(args.data)
    libraries = split_libraries(raw, meta, args.seed)
    prepared = [prepare(m, prep, name)[0] for name, m in libraries.items()]
    summary = args.out / "summary.json"  # runs of earlier invocations are kept
    results = json.loads(summary.read_text()) if summary.exists() else {}
    frames = {
        name: pd.read_parquet(args.out / f"{name}.embedding.parquet")
        for name in results
        if name not in runs
    }

    def record(name: str, frame: pd.DataFrame, info: dict) -> None:
        frames[name] = frame
        results[name] = {**info, **score(frame, meta, seeds)}
        frame.to_parquet(args.out / f"{name}.embedding.parquet")
        summary.write_text(json.dumps(results, indent=2) + "\n")
        r = results[name]
        print(
            f"{name}: {r['wall_s']:.0f}s nmi={r['leiden_nmi']:.3f}/{r['kmeans_nmi']:.3f} "
            f"ari={r['leiden_ari']:.3f}/{r['kmeans_ari']:.3f} entropy={r['batch_entropy']:.3f} "
            f"ilisi={r['ilisi']:.2f} gc={r['graph_connectivity']:.3f}",
            flush=True,
        )

    if "single" in runs:
        single, _ = prepare(raw, prep, "snare")
        record("single", *run_fit(single, model, train))
    combined, combine_info = {}, {}
    for name, (genes, negatives) in JOINT.items():
        if name in runs:
            if genes not in combined:
                start = time.perf_counter()
                combined[genes] = combine_samples(prepared, genes=genes)
                combine_info[genes] = dict(
                    combined[genes].uns["sci2cl"]["combine"], combine_s=time.perf_counter() - start
                )
                (args.out / "combine.json").write_text(json.dumps(combine_info, indent=2) + "\n")
            frame, info = run_fit(combined[genes], replace(model, negatives=negatives), train)
            record(name, frame, info)
    if "concat" in runs:
        parts, wall = [], 0.0
        for sample in prepared:
            frame, info = run_fit(sample, model, train)
            parts.append(frame)
            wall += info["wall_s"]
        record("concat", pd.concat(parts), {"wall_s": wall, "epochs": None, "best_epoch": None})
    umap_figure(frames, meta, args.out / "umap.png")


if __name__ == "__main__":
    main()
