"""Killed training resumes exactly: `sci2cl train` processes stopped by SIGKILL mid-run or by
SIGTERM (checkpoint on the way out), resumed with --resume, give the uninterrupted run's
embeddings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import SNARE_H5MU

from sci2cl.cli import main

EPOCHS = 4
TRAIN_ARGS = [
    *("--latent-dim", "8", "--hidden-dims", "32,16", "--n-views", "2", "--n-heads", "2"),
    *("--n-tokens", "2", "--max-epochs", str(EPOCHS), "--warmup-epochs", "1"),
    *("--batch-size", "64", "--patience", "100", "--threads", "1", "--no-figures"),
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    result = CliRunner().invoke(
        main,
        ["prepare", "--input", str(SNARE_H5MU), "--output-prefix", str(folder / "p")]
        + ["--n-top-genes", "400", "--n-top-peaks", "400"],
    )
    assert result.exit_code == 0, result.output
    return folder / "p.prepared.h5mu"


def _train(prepared, prefix, *extra) -> subprocess.Popen:
    command = [sys.executable, "-m", "sci2cl.cli", "train", "--input", str(prepared)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*command, "--output-prefix", str(prefix), *TRAIN_ARGS, *extra],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _train_here(prepared, prefix, *extra) -> str:
    """The same command in this process (only the runs to be killed need their own)."""
    args = ["train", "--input", str(prepared), "--output-prefix", str(prefix), *TRAIN_ARGS]
    result = CliRunner().invoke(main, [*args, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def _when_saved(process: subprocess.Popen, checkpoint, timeout=300.0) -> None:
    """Wait until the first checkpoint exists (epoch 1 done) while training still runs."""
    deadline = time.monotonic() + timeout
    while not checkpoint.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)


def _embeddings(prefix) -> np.ndarray:
    table = pd.read_parquet(f"{prefix}.embeddings.parquet")
    return table[[c for c in table.columns if c.removeprefix("sci2cl_").isdigit()]].to_numpy()


def test_killed_and_terminated_training_resume_to_the_same_embeddings(prepared, tmp_path):
    _train_here(prepared, tmp_path / "whole")
    expected = _embeddings(tmp_path / "whole")

    # SIGKILL: nothing runs on the way out; the last epoch's checkpoint is what is left
    ckpt = tmp_path / "killed.ckpt"
    run = _train(prepared, tmp_path / "killed", "--checkpoint", str(ckpt), "--resume")
    _when_saved(run, ckpt)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    state = torch.load(ckpt, weights_only=True)["state"]
    assert 1 <= state["epoch"] < EPOCHS and not (tmp_path / "killed.embeddings.parquet").exists()
    resumed = _train_here(prepared, tmp_path / "killed", "--checkpoint", str(ckpt), "--resume")
    assert f"trained {EPOCHS} epochs" in resumed
    np.testing.assert_allclose(_embeddings(tmp_path / "killed"), expected, rtol=1e-6, atol=1e-6)

    # SIGTERM: progress is saved at the next step (mid-epoch), one line, non-zero exit
    ckpt = tmp_path / "term.ckpt"
    run = _train(prepared, tmp_path / "term", "--checkpoint", str(ckpt), "--resume")
    _when_saved(run, ckpt)
    saved_at = ckpt.stat().st_mtime_ns
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143 and "Traceback" not in err  # 128 + SIGTERM, as schedulers expect
    assert "stopped by SIGTERM" in err.strip().splitlines()[-1] and str(ckpt) in err
    assert ckpt.stat().st_mtime_ns > saved_at  # written on the way out
    state = torch.load(ckpt, weights_only=True)["state"]
    assert state["epoch"] < EPOCHS and (state["batches_done"] > 0 or state["epoch"] > 1)
    _train_here(prepared, tmp_path / "term", "--checkpoint", str(ckpt), "--resume")
    np.testing.assert_allclose(_embeddings(tmp_path / "term"), expected, rtol=1e-6, atol=1e-6)
