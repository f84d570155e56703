"""Scaling study of sci2cl: seconds per epoch and peak RSS vs cells and vs peaks.

Each point is its own process (``benchmarks.scaling_child``, peak RSS by ``os.wait4``).
Epoch time = mean step time of a fixed number of steps x steps per epoch, so the 1M-cell
point stays cheap. Memory is fitted linearly on the number of non-zeros.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd

from benchmarks.launch import run_child
from benchmarks.methods import PRODUCT_PYTHON
from sci2cl.train import TrainConfig

DEFAULT_PEAKS = 10000
DEFAULT_CELLS = 10000


def points(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    cells = [("cells", int(n), DEFAULT_PEAKS) for n in args.scaling_cells.split(",")]
    peaks = [("peaks", DEFAULT_CELLS, int(p)) for p in args.scaling_peaks.split(",")]
    measured = {(c, p) for _, c, p in cells}
    return cells + [point for point in peaks if point[1:] not in measured]


def run_point(args: argparse.Namespace, axis: str, cells: int, peaks: int) -> dict | None:
    folder = args.out / "scaling"
    result = folder / f"{axis}_{cells}_{peaks}.json"
    if result.exists() and not args.force:
        return json.loads(result.read_text())
    command = [str(PRODUCT_PYTHON), "-m", "benchmarks.scaling_child", "--data", str(args.data)]
    command += ["--cells", str(cells), "--peaks", str(peaks), "--steps", str(args.scaling_steps)]
    command += ["--threads", str(args.threads), "--out", str(result.with_suffix(".child.json"))]
    print(f"[scaling] {axis}: {cells} cells, {peaks} peaks", file=sys.stderr, flush=True)
    run = run_child(command, args.threads, folder / f"{axis}_{cells}_{peaks}.log")
    if run["returncode"] != 0:
        print(f"[scaling] failed: see {folder}", file=sys.stderr)
        return None
    record = json.loads(result.with_suffix(".child.json").read_text())
    record |= {"axis": axis, "peak_rss_mib": run["peak_rss_mib"], "process_s": run["process_s"]}
    result.write_text(json.dumps(record, indent=2))
    return record


def notes(table: pd.DataFrame) -> str:
    """The memory fit and the 1M-cell extrapolation, as markdown."""
    slope, intercept = np.polyfit(table["nnz"] / 1e6, table["peak_rss_mib"], 1)
    cells = table[table["axis"] == "cells"].sort_values("n_cells")
    per_cell_step = np.polyfit(cells["n_cells"], cells["s_per_step"], 1)[0] if len(cells) > 1 else 0
    largest = cells.iloc[-1]
    batch = TrainConfig().batch_size
    million = largest["s_per_epoch"] * 1e6 / largest["n_cells"]
    return "\n".join(
        [
            f"- Peak RSS ≈ {intercept:.0f} MiB + {slope:.1f} MiB per million non-zeros "
            "(least squares over all points): memory grows linearly with the non-zeros, "
            "since the data stay sparse and only a mini-batch is ever dense.",
            f"- Step time barely depends on the number of cells (slope {per_cell_step:.2e} s "
            f"per extra cell: a step sees one mini-batch of {batch} cells), so an epoch costs "
            "steps x step time, linear in cells.",
            f"- 1M cells on this CPU (threads as above): ≈ {million / 3600:.1f} h per epoch "
            f"({largest['s_per_step']:.3f} s/step measured at {int(largest['n_cells']):,} cells).",
            "- GPU: not measured (no GPU was lent to this session); the 10x-density study "
            "below measures a full 1M-cell epoch on the CPU.",
        ]
    )


def run_scaling(args: argparse.Namespace) -> None:
    """Measure every point (cached), write scaling.csv + notes.md, regenerate the doc."""
    records = [r for p in points(args) if (r := run_point(args, *p)) is not None]
    if not records:
        return
    table = pd.DataFrame.from_records(records)
    columns = ["axis", "n_cells", "n_peaks", "nnz", "s_per_step", "s_per_epoch", "peak_rss_mib"]
    table = table[columns]
    table.to_csv(args.out / "scaling" / "scaling.csv", index=False)
    (args.out / "scaling" / "notes.md").write_text(notes(table))
