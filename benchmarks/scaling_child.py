"""One scaling point (run as its own process so its peak RSS is its own): resample real SNARE
cells with replacement to ``--cells``, keep the ``--peaks`` most frequently accessible peaks,
build sci2cl's training data and model as ``sci2cl.api.fit`` does, and time ``--steps`` full
(joint-stage) optimiser steps of the default model.

    python -m benchmarks.scaling_child --data ../shared/data --cells 50000 --peaks 10000 \
        --steps 20 --threads 1 --out point.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from benchmarks.datasets import load_snare
from sci2cl.api import _mean_frequency
from sci2cl.data import MODALITIES, InputTransform, MultiomeDataset
from sci2cl.model import ModelConfig
from sci2cl.model.scicl import Sci2clModule
from sci2cl.preprocess import detection_counts, top_detected
from sci2cl.train import TrainConfig

WARM_STEPS = 3


def resampled_counts(data_dir: Path, n_cells: int, n_peaks: int, seed: int) -> dict:
    """Raw counts (CSR) of ``n_cells`` cells drawn with replacement from the real cells."""
    mdata, _ = load_snare(data_dir)
    rna, atac = sp.csr_matrix(mdata["rna"].X), sp.csr_matrix(mdata["atac"].X)
    atac = atac[:, top_detected(detection_counts(atac), n_peaks)]
    rows = np.random.default_rng(seed).integers(0, rna.shape[0], n_cells)
    return {"rna": rna[rows], "atac": atac[rows]}


def time_steps(data: MultiomeDataset, module: Sci2clModule, steps: int, batch: int) -> float:
    """Mean seconds of one training step (forward with all losses, backward, AdamW)."""
    optimiser = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=1e-5)
    rng = np.random.default_rng(0)
    module.train()
    durations = []
    for step in range(WARM_STEPS + steps):
        start = time.perf_counter()
        rows = rng.choice(data.n_cells, batch, replace=False)
        terms = module.loss(data.batch(rows, module.config.decoder_features_per_step))
        optimiser.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimiser.step()
        if step >= WARM_STEPS:
            durations.append(time.perf_counter() - start)
    return float(np.mean(durations))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cells", type=int, required=True)
    parser.add_argument("--peaks", type=int, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    counts = resampled_counts(args.data, args.cells, args.peaks, seed=0)
    transforms = {m: InputTransform.fit(counts[m]) for m in MODALITIES}
    data = MultiomeDataset(counts, transforms)
    torch.manual_seed(0)
    module = Sci2clModule(
        {m: counts[m].shape[1] for m in MODALITIES},
        ModelConfig(),
        mean_frequency={m: _mean_frequency(counts[m]) for m in MODALITIES},
        mean_library={m: float(counts[m].sum() / counts[m].shape[0]) for m in MODALITIES},
    )
    setup_s = time.perf_counter() - start
    config = TrainConfig()
    step_s = time_steps(data, module, args.steps, config.batch_size)
    train_cells = int(args.cells * (1 - config.validation_fraction))
    record = {
        "n_cells": args.cells,
        "n_genes": counts["rna"].shape[1],
        "n_peaks": counts["atac"].shape[1],
        "nnz": int(sum(c.nnz for c in counts.values())),
        "setup_s": setup_s,
        "s_per_step": step_s,
        "steps_per_epoch": train_cells // config.batch_size,
        "s_per_epoch": step_s * (train_cells // config.batch_size),
        "timed_steps": args.steps,
        "threads": args.threads,
    }
    args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
