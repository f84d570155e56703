"""What every method child shares: arguments, thread limits, input reading, outputs.

A child writes ``<out>/embedding.npy`` (cells in input order) or, for graph methods,
``<out>/graph.npz`` (connectivities) and ``<out>/distances.npz``, plus ``<out>/child.json``
with what only the child knows (training seconds, epochs, device, caps).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse as sp

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--input", required=True, type=Path, help="snare.h5mu (raw counts)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the outputs")
    parser.add_argument("--method", required=True, help="which method of this module")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=None, help="epoch / iteration cap")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    limit_threads(args.threads)
    return args


def limit_threads(threads: int) -> None:
    """Cap BLAS/OpenMP/torch threads (the harness also sets the variables before start)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


@contextmanager
def stopwatch(record: dict) -> Iterator[None]:
    """Adds ``train_s`` (wall seconds of the block) to ``record``."""
    start = time.perf_counter()
    yield
    record["train_s"] = time.perf_counter() - start


def write_embedding(out: Path, embedding: np.ndarray, record: dict) -> None:
    np.save(out / "embedding.npy", np.asarray(embedding, dtype=np.float32))
    write_record(out, record)


def write_graph(out: Path, connectivities: sp.spmatrix, distances: sp.spmatrix, record: dict):
    sp.save_npz(out / "graph.npz", sp.csr_matrix(connectivities))
    sp.save_npz(out / "distances.npz", sp.csr_matrix(distances))
    write_record(out, record)


def write_record(out: Path, record: dict) -> None:
    (out / "child.json").write_text(json.dumps(record, indent=2, default=str))
