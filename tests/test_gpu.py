"""Training on a CUDA device: mixed precision, the GradScaler, seeded repeatability, host
syncs in the data path, and GPU-trained models used on CPU-only hosts. Skipped without CUDA;
run with ``pytest -m gpu``."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import SMALL_MODEL, SMALL_TRAIN

from sci2cl.api import fit
from sci2cl.data import MODALITIES
from sci2cl.embed import TrainedModel, embed

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
GPU_TRAIN = replace(SMALL_TRAIN, device="cuda")


@pytest.fixture(scope="module")
def prepared():
    from conftest import SNARE_H5MU

    from sci2cl.io import read_multiome
    from sci2cl.preprocess import PrepareConfig, prepare

    out, _ = prepare(read_multiome(SNARE_H5MU), PrepareConfig(n_top_peaks=1500), "snare")
    return out


def _finite_history(history: list[dict]) -> bool:
    return all(np.isfinite(v) for h in history for v in h.values() if isinstance(v, float))


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_mixed_precision_training_stays_finite(prepared, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model, result, data = fit(prepared, SMALL_MODEL, replace(GPU_TRAIN, precision=precision))
    assert result.device.startswith("cuda") and _finite_history(result.history)
    assert np.isfinite(embed(model.module, data, device="cuda")["joint"]).all()


def test_grad_scaler_backs_off_from_overflow_and_keeps_training(prepared, monkeypatch):
    """fp16 with an absurd initial loss scale: the first steps overflow, the scaler skips
    them and lowers the scale, and training still ends finite."""
    scales: list[float] = []

    class Recording(torch.amp.GradScaler):
        def __init__(self, device="cuda", **kwargs):
            super().__init__(device, init_scale=2.0**40, **kwargs)  # fp16 grads overflow

        def update(self, new_scale=None):
            super().update(new_scale)
            scales.append(self.get_scale())

    monkeypatch.setattr(torch.amp, "GradScaler", Recording)
    before = None

    def first_epoch(record):
        nonlocal before
        before = before or record

    config = replace(GPU_TRAIN, precision="16", batch_size=32)  # ~40 steps per epoch
    model, result, _ = fit(prepared, SMALL_MODEL, config, first_epoch)
    assert scales and scales[0] < 2.0**40 and min(scales) < 2.0**30  # overflow seen, backed off
    assert _finite_history(result.history)
    assert result.history[-1]["train_zinb_rna"] < before["train_zinb_rna"]  # steps were taken


def test_same_seed_same_embeddings_on_one_gpu(prepared):
    a, _, data = fit(prepared, SMALL_MODEL, GPU_TRAIN)
    b, _, _ = fit(prepared, SMALL_MODEL, GPU_TRAIN)
    first, second = (embed(m.module, data, device="cuda")["joint"] for m in (a, b))
    # atomics in CUDA kernels (embedding_bag backward) may reorder float sums slightly
    np.testing.assert_allclose(first, second, rtol=0, atol=0.05)
    assert np.abs(first - second).mean() < 5e-3


def test_data_path_and_zinb_loss_never_wait_for_the_host(prepared):
    from sci2cl.loader import BatchLoader

    model, _, data = fit(prepared, SMALL_MODEL, replace(GPU_TRAIN, max_epochs=1))
    module = model.module.to("cuda").train()
    loader = BatchLoader(data, "cuda", 64)
    assert loader.resident
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        batch = next(iter(loader(np.arange(64), SMALL_MODEL.decoder_features_per_step)))
        for m in MODALITIES:
            z = module.encoders[m].encode_batch(batch[m])
            module.decoders[m].nll(z, batch[m]).mean().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_pinned_prefetch_gives_the_resident_batches(prepared, monkeypatch):
    import sci2cl.loader

    _, _, data = fit(prepared, SMALL_MODEL, replace(GPU_TRAIN, max_epochs=1))
    rows = np.arange(data.n_cells)
    resident = list(sci2cl.loader.BatchLoader(data, "cuda", 100)(rows))
    monkeypatch.setattr(sci2cl.loader, "RESIDENT_SHARE", 0.0)
    loader = sci2cl.loader.BatchLoader(data, "cuda", 100)
    assert not loader.resident
    for a, b in zip(resident, loader(rows), strict=True):
        for m in MODALITIES:
            assert torch.equal(a[m].indices, b[m].indices) and torch.equal(a[m].values, b[m].values)


def test_gpu_trained_model_embeds_on_a_cpu_only_host(prepared, tmp_path):
    model, _, data = fit(prepared, SMALL_MODEL, GPU_TRAIN)
    on_gpu = embed(model.module, data, device="cuda")["joint"]
    model.save(tmp_path / "m.pt")
    TrainedModel.load(tmp_path / "m.pt")  # plain load works here too
    for m, matrix in data.counts.items():
        sp.save_npz(tmp_path / f"{m}.npz", matrix)
    script = (
        "import sys, numpy as np, scipy.sparse as sp, torch\n"
        "assert not torch.cuda.is_available()\n"
        "from sci2cl.embed import TrainedModel, embed\n"
        "counts = {m: sp.load_npz(f'{sys.argv[2]}/{m}.npz') for m in ('rna', 'atac')}\n"
        "model = TrainedModel.load(sys.argv[1])\n"
        "np.save(sys.argv[3], embed(model.module, model.dataset(counts))['joint'])\n"
    )
    out = tmp_path / "cpu.npy"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", script, str(tmp_path / "m.pt"), str(tmp_path), str(out)]
    subprocess.run(args, env=env, check=True, timeout=600)
    np.testing.assert_allclose(np.load(out), on_gpu, rtol=1e-4, atol=1e-4)
