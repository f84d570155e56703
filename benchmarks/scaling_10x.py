"""Scaling at 10x Multiome density: one full training epoch (and the whole fit) on the CPU at
10k / 100k / 1M cells from ``benchmarks.multiome_shape``, with peak RSS.

Each point is its own process (peak RSS of the child alone, ``os.wait4``). The child draws the
cells chunk by chunk straight into the packed store (never a full CSR), takes the input
transforms fitted on the generator's 20k-cell pilot (drawn once by the parent), and runs
``Trainer.fit`` for one epoch with the default model and training settings: the epoch (all
training steps + validation), then the fusion check and the calibration pass over every cell.
Nothing is extrapolated.

    python -m benchmarks.scaling_10x --out benchmarks/results --cells 10000,100000 \
        [--doc docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from benchmarks.doc_blocks import section_or_doc, write_block
from benchmarks.launch import run_child
from benchmarks.multiome_shape import MultiomeShape, tenx_shape
from sci2cl.api import _mean_frequency
from sci2cl.data import MODALITIES, InputTransform, MultiomeDataset
from sci2cl.model import ModelConfig, Sci2clModule
from sci2cl.packed import PackedBuilder, choose_page_size
from sci2cl.train import TrainConfig, Trainer

BEGIN, END = "<!-- scaling-10x:begin -->", "<!-- scaling-10x:end -->"
RSS_BAR_GB = 16.0  # issue 13: 1M cells at 10x density, one CPU epoch within 16 GB
MILLION = 1_000_000
PROGRESS_EVERY = 100  # steps between progress lines in the child's log


def pilot_statistics(folder: Path) -> Path:
    """The generator and what training takes from its 20k-cell pilot (input transforms, mean
    frequencies and libraries, page sizes), drawn once in this process and cached, so the
    points' peak RSS is their own data and training only."""
    path = folder / "shape.npz"
    if path.exists():
        return path
    shape, pilot = tenx_shape(0)
    stats = {}
    for m in MODALITIES:
        transform = InputTransform.fit(pilot[m])
        stats |= {f"scale_{m}": transform.scale, f"target_sum_{m}": transform.target_sum}
        stats[f"mean_frequency_{m}"] = _mean_frequency(pilot[m])
        stats[f"mean_library_{m}"] = pilot[m].sum() / pilot[m].shape[0]
        stats[f"page_size_{m}"] = choose_page_size(pilot[m].nnz / pilot[m].shape[0])
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, **asdict(shape), **stats)
    return path


def child(n_cells: int, shape_path: Path, out: Path) -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    z = np.load(shape_path)
    shape = MultiomeShape(**{f.name: z[f.name] for f in fields(MultiomeShape)})
    transforms = {
        m: InputTransform(float(z[f"target_sum_{m}"]), z[f"scale_{m}"]) for m in MODALITIES
    }
    mean_frequency = {m: z[f"mean_frequency_{m}"] for m in MODALITIES}
    mean_library = {m: float(z[f"mean_library_{m}"]) for m in MODALITIES}
    width = {"rna": len(shape.genes), "atac": shape.atac.shape[1]}
    builders = {m: PackedBuilder(width[m], int(z[f"page_size_{m}"]), np.uint8) for m in MODALITIES}
    nnz = dict.fromkeys(MODALITIES, 0)
    for rna, atac in shape.chunks(n_cells, seed=1):
        for m, chunk in zip(MODALITIES, (rna, atac), strict=True):
            builders[m].add(chunk)
            nnz[m] += chunk.nnz
    data = MultiomeDataset({m: b.finish() for m, b in builders.items()}, transforms)
    del builders
    build_s = time.perf_counter() - start
    build_rss = _peak_rss_mib()
    print(f"built {n_cells} cells in {build_s:.0f}s: nnz {nnz}, {build_rss:.0f} MiB", flush=True)
    torch.manual_seed(0)
    module = Sci2clModule(
        {m: data.n_features(m) for m in MODALITIES},
        ModelConfig(),
        mean_frequency=mean_frequency,
        mean_library=mean_library,
    )
    steps = _count_steps(module)
    config = TrainConfig(max_epochs=1, device="cpu")
    marks: dict[str, float] = {}
    fit_start = time.perf_counter()
    result = Trainer(config).fit(
        module, data, on_epoch=lambda r: marks.setdefault("epoch", time.perf_counter())
    )
    fit_s = time.perf_counter() - fit_start
    record = {
        "n_cells": n_cells,
        "n_features": {m: data.n_features(m) for m in MODALITIES},
        "nnz": nnz,
        "nnz_total": sum(nnz.values()),
        "packed_bytes": {m: data.packed[m].nbytes for m in MODALITIES},
        "build_s": build_s,
        "peak_rss_after_build_mib": build_rss,
        "epoch_s": marks["epoch"] - fit_start,
        "fit_s": fit_s,
        "steps": steps["n"],
        "s_per_step": steps["s"] / max(steps["n"], 1),
        "stage": result.history[0]["stage"],
        "train_loss": result.history[0]["train_loss"],
        "threads": torch.get_num_threads(),
        "batch_size": config.batch_size,
    }
    out.write_text(json.dumps(record, indent=2))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _count_steps(module: Sci2clModule) -> dict:
    """Wrap ``module.loss`` to count training steps, time them and log progress."""
    counts = {"n": 0, "s": 0.0, "last": time.perf_counter()}
    loss = module.loss

    def counted(*args, **kwargs):
        if module.training:
            now = time.perf_counter()
            counts["n"] += 1
            if counts["n"] > 1:
                counts["s"] += now - counts["last"]
            counts["last"] = now
            if counts["n"] % PROGRESS_EVERY == 0:
                print(f"step {counts['n']}: {counts['s'] / counts['n']:.2f} s/step", flush=True)
        return loss(*args, **kwargs)

    module.loss = counted
    return counts


def run_points(out: Path, cells: list[int], force: bool) -> list[dict]:
    folder = out / "scaling_10x"
    shape_path = pilot_statistics(folder)
    records = []
    for n in cells:
        result = folder / f"cells_{n}.json"
        if force or not result.exists():
            print(f"[scaling-10x] {n:,} cells", file=sys.stderr, flush=True)
            command = [sys.executable, "-m", "benchmarks.scaling_10x", "--child", str(n)]
            command += ["--shape", str(shape_path), "--out", str(result.with_suffix(".child.json"))]
            run = run_child(command, 1, folder / f"cells_{n}.log")
            if run["returncode"] != 0:
                print(f"[scaling-10x] failed: see {folder}/cells_{n}.log", file=sys.stderr)
                continue
            record = json.loads(result.with_suffix(".child.json").read_text())
            record |= {"peak_rss_mib": run["peak_rss_mib"], "process_s": run["process_s"]}
            result.write_text(json.dumps(record, indent=2))
        records.append(json.loads(result.read_text()))
    return records


def section(records: list[dict]) -> list[str]:
    if not records:
        return []
    rows = sorted(records, key=lambda r: r["n_cells"])
    lines = [
        BEGIN,
        "## Scaling at 10x Multiome density (`benchmarks/scaling_10x.py`)",
        "",
        "Cells from `benchmarks/multiome_shape.py` (4,000 HVGs, 120,000 peaks, median ~3,800 "
        "ATAC non-zeros per cell), drawn straight into the packed store; one full epoch of "
        "`Trainer.fit` with the default model and settings (batches of 256, 10% held out), one "
        "CPU thread, each size in its own process. `epoch` = every training step plus the "
        "validation pass; `fit` adds the fusion check and the calibration pass over all cells.",
        "",
        "| cells | non-zeros | packed (GB) | build (s) | s/step | epoch (s) | fit (s) "
        "| peak RSS (GB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        packed = sum(r["packed_bytes"].values()) / 1e9
        lines.append(
            f"| {r['n_cells']:,} | {r['nnz_total']:,} | {packed:.2f} | {r['build_s']:.0f} | "
            f"{r['s_per_step']:.2f} | {r['epoch_s']:.0f} | {r['fit_s']:.0f} | {_gb(r):.2f} |"
        )
    lines.append("")
    if len(rows) > 1:
        nnz = np.array([r["nnz_total"] for r in rows]) / 1e9
        rss = np.array([_gb(r) for r in rows])
        slope, intercept = np.polyfit(nnz, rss, 1)
        worst = np.abs(rss - (intercept + slope * nnz)).max()
        lines.append(
            f"- Peak RSS grows by {slope:.2f} bytes per non-zero (the packed counts take "
            f"{sum(rows[-1]['packed_bytes'].values()) / rows[-1]['nnz_total']:.2f}) on top of "
            f"{intercept:.2f} GB (model, optimiser, batches, interpreter): "
            f"least squares over {len(rows)} sizes, largest residual {worst:.2f} GB."
        )
    million = [r for r in rows if r["n_cells"] >= MILLION]
    if million:
        r = million[0]
        verdict = "met" if _gb(r) <= RSS_BAR_GB else "NOT met"
        lines.append(
            f"- {r['n_cells']:,} cells: one full epoch took {r['epoch_s'] / 3600:.2f} h on one "
            f"CPU thread with peak RSS {_gb(r):.2f} GB (bar: <= {RSS_BAR_GB:.0f} GB: {verdict})."
        )
    else:
        steps = int(MILLION * (1 - TrainConfig().validation_fraction)) // TrainConfig().batch_size
        lines.append(
            f"- 1M cells: not measured yet (one epoch is {steps:,} training steps; "
            "`make bench-scaling-10x` runs it)."
        )
    lines += [
        "- GPU: not measured (no GPU was lent to this session).",
        END,
    ]
    return lines


def _gb(record: dict) -> float:
    return record["peak_rss_mib"] * 2**20 / 1e9


def scaling_10x_section(out: Path, doc: Path) -> list[str]:
    """For ``write_report``: from cached results, else the block already in the doc."""
    folder = out / "scaling_10x"
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("cells_*[0-9].json"))]
    return section_or_doc(section(records), doc, BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--cells", default="10000,100000,1000000")
    parser.add_argument("--doc", type=Path, default=None, help="write the section into this doc")
    parser.add_argument("--force", action="store_true", help="re-measure cached sizes")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--shape", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.shape, args.out)
        return
    records = run_points(args.out, [int(n) for n in args.cells.split(",")], args.force)
    lines = section(records)
    print("\n".join(lines))
    if args.doc is not None and lines:
        write_block(args.doc, lines, BEGIN, END)


if __name__ == "__main__":
    main()
