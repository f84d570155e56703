"""Training, determinism, batch-independent inference and the model file round trip."""

from __future__ import annotations

import ctypes
import platform
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import DATA, SNARE_H5MU
from helpers import SMALL_MODEL, SMALL_TRAIN

from sci2cl.api import fit
from sci2cl.data import MODALITIES
from sci2cl.embed import TrainedModel, embed
from sci2cl.preprocess import PrepareConfig, prepare
from sci2cl.train.averaging import averaged_weights, update_average
from sci2cl.train.device import keep_freed_memory


@pytest.fixture(scope="module")
def prepared():
    from sci2cl.io import read_multiome

    mdata = read_multiome(SNARE_H5MU)
    out, _ = prepare(mdata, PrepareConfig(n_top_peaks=1500), "snare")
    return out


@pytest.fixture(scope="module")
def trained(prepared):
    torch.set_num_threads(1)
    return fit(prepared, SMALL_MODEL, SMALL_TRAIN)


def test_training_reduces_loss_and_records_history(trained):
    _, result, _ = trained
    history = result.history
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[0]["stage"] == "warmup" and history[-1]["stage"] == "joint"
    assert history[0]["train_moc"] == 0.0 and history[-1]["train_moc"] > 0
    joint = [h for h in history if h["stage"] == "joint"]
    assert joint[-1]["train_loss"] < joint[0]["train_loss"] or len(joint) == 1
    assert np.isfinite(result.best_validation_loss)


def test_embedding_is_batch_independent(trained):
    model, _, data = trained
    full = embed(model.module, data, batch_size=1024)["joint"]
    small = embed(model.module, data, batch_size=7)["joint"]
    np.testing.assert_allclose(full, small, rtol=1e-4, atol=1e-5)
    rows = np.array([5, 900, 17, 1200])
    alone = model.module.encode(data.batch(rows))["joint"].detach().numpy()
    reordered = model.module.encode(data.batch(rows[::-1]))["joint"].detach().numpy()[::-1]
    np.testing.assert_allclose(alone, full[rows], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reordered, full[rows], rtol=1e-4, atol=1e-5)


def test_embedding_is_deterministic_in_eval_mode(trained):
    model, _, data = trained
    a = embed(model.module, data)["joint"]
    b = embed(model.module, data)["joint"]
    assert np.array_equal(a, b)


def test_same_seed_same_model_on_cpu(prepared, trained):
    model, result, data = trained
    again, result2, data2 = fit(prepared, SMALL_MODEL, SMALL_TRAIN)
    assert result.history == result2.history
    np.testing.assert_array_equal(
        embed(model.module, data)["joint"], embed(again.module, data2)["joint"]
    )


def test_model_file_round_trip_loads_weights_only(trained, tmp_path):
    model, _, data = trained
    path = tmp_path / "m.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)  # no pickled code: tensors and JSON only
    assert payload["format"] == "sci2cl-model/3"
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())
    loaded = TrainedModel.load(path)
    assert loaded.features == model.features and loaded.history == model.history
    np.testing.assert_allclose(
        embed(model.module, data)["joint"],
        embed(loaded.module, loaded.dataset(data.counts))["joint"],
        rtol=1e-4,
        atol=1e-5,
    )


def test_unreadable_model_file_is_an_input_error(tmp_path):
    from sci2cl.errors import InputError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    for path, problem in ((bad, "not a readable sci2cl model"), (tmp_path / "no.pt", "no such")):
        with pytest.raises(InputError, match=problem):
            TrainedModel.load(path)
    torch.save({"format": "other/1"}, bad)
    with pytest.raises(InputError, match="not a sci2cl model"):
        TrainedModel.load(bad)


@pytest.mark.parametrize("val_mom, kept", [(0.52, True), (0.75, False)])
def test_fusion_check_reads_the_selected_epoch(val_mom, kept):
    from sci2cl.model import Sci2clModule
    from sci2cl.train.checkpoint import TrainingState
    from sci2cl.train.trainer import FitResult, Trainer

    module = Sci2clModule({"rna": 5, "atac": 7}, SMALL_MODEL)
    later = 0.75 if kept else 0.52  # epochs after the selected one must not decide
    history = [{"val_mom": 0.0}, {"val_mom": val_mom}, {"val_mom": later}]
    result = FitResult()
    Trainer._check_fusion(module, TrainingState(epoch=3, best_epoch=2, history=history), result)
    assert result.fusion_residual_kept is kept and result.best_validation_mom == val_mom
    assert float(module.fusion.cross.residual_gate) == float(kept)


def test_legacy_model_files_load_and_embed_as_when_written(tmp_path):
    """A format /2 file (pickled dict, numpy arrays) written by sci2cl 98152b3 still loads
    with weights_only=True and embeds the cells it was trained on as it did then."""
    import pandas as pd

    from sci2cl.cli import main

    legacy = DATA / "legacy_model"
    payload = torch.load(legacy / "snare.model.pt", weights_only=False)
    assert payload["format"] == "sci2cl-model/2"
    result = CliRunner().invoke(
        main,
        ["embed", "--model", str(legacy / "snare.model.pt"), "--input", str(SNARE_H5MU)]
        + ["--output-prefix", str(tmp_path / "q"), "--device", "cpu", "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    then = pd.read_parquet(legacy / "snare.embeddings.parquet")
    now = pd.read_parquet(tmp_path / "q.embeddings.parquet")
    assert list(now["barcode"]) == list(then["barcode"])
    latent = [c for c in then.columns if c.removeprefix("sci2cl_").isdigit()]
    np.testing.assert_allclose(now[latent], then[latent], rtol=1e-4, atol=1e-5)
    # format /1 predates the fusion check: no residual gate saved, the residual always on
    payload["format"] = "sci2cl-model/1"
    del payload["state_dict"]["fusion.cross.residual_gate"]
    old = TrainedModel.from_payload(payload)
    assert float(old.module.fusion.cross.residual_gate) == 1.0
    payload["format"] = "sci2cl-model/0"
    with pytest.raises(ValueError, match="not a sci2cl model"):
        TrainedModel.from_payload(payload)


def test_resumed_run_matches_the_uninterrupted_one(prepared, trained, tmp_path):
    from dataclasses import replace

    model, result, data = trained
    torch.set_num_threads(1)  # as the fixture trained (in-process CLI runs may change it)
    ckpt = tmp_path / "run.ckpt"
    fit(prepared, SMALL_MODEL, replace(SMALL_TRAIN, max_epochs=2), checkpoint=ckpt)
    payload = torch.load(ckpt, weights_only=True)
    assert payload["state"]["epoch"] == 2 and {"numpy", "torch"} <= set(payload["rng"])
    again, resumed, _ = fit(prepared, SMALL_MODEL, SMALL_TRAIN, checkpoint=ckpt, resume=ckpt)
    assert resumed.history == result.history and resumed.epochs_run == 3
    np.testing.assert_array_equal(
        embed(again.module, data)["joint"], embed(model.module, data)["joint"]
    )


def test_non_finite_loss_stops_training_naming_epoch_and_term(prepared, tmp_path):
    from dataclasses import replace

    from sci2cl.train.errors import TrainingDiverged

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(TrainingDiverged, match=r"loss term '\w+' is (nan|inf) at epoch 1"):
        fit(prepared, SMALL_MODEL, replace(SMALL_TRAIN, lr=1e30), checkpoint=ckpt)
    assert not ckpt.exists()  # a diverged epoch is never saved


def _count_weights(module, data) -> np.ndarray:
    """Each cell's joint weights (cells x modalities), recomputed from its counts."""
    library = np.stack([np.asarray(data.counts[m].sum(axis=1)).ravel() for m in MODALITIES], 1)
    reliability = library / (library + module.config.joint_half_counts)
    return reliability / reliability.max(axis=1, keepdims=True)


def test_joint_blocks_are_standardised_and_weighted_by_counts(trained):
    model, _, data = trained
    module = model.module
    d = module.config.joint_components
    out = embed(module, data)
    assert out["joint"].shape[1] == 2 * d
    weight = _count_weights(module, data)
    for i in range(2):
        unweighted = out["joint"][:, i * d : (i + 1) * d] / weight[:, i : i + 1]
        # calibrated on these cells: centred, mean per-dimension SD of one
        np.testing.assert_allclose(unweighted.mean(axis=0), 0.0, atol=1e-3)
        assert unweighted.std(axis=0).mean() == pytest.approx(1.0, rel=1e-3)
    # a cell without ATAC counts is placed by its RNA alone
    batch = data.batch(np.array([3, 4]))
    batch.atac.library.zero_()
    joint = module.encode(batch)["joint"].detach().numpy()
    assert np.all(joint[:, d:] == 0) and np.any(joint[:, :d] != 0)


def test_joint_blocks_are_principal_components_of_decoded_expression(trained):
    """Each block is the cell's decoded, log-normalised expression on the principal axes of
    those values over the training cells: its variance ordered as PCA's, and the distances
    between cells those of an exact PCA of the same (cells x features) values."""
    model, _, data = trained
    module = model.module
    d = module.config.joint_components
    joint = embed(module, data)["joint"]
    weight = _count_weights(module, data)
    with torch.no_grad():
        batch = data.batch(np.arange(data.n_cells))
        z = {m: module.encoders[m].encode_batch(batch[m]) for m in MODALITIES}
        streams = module.streams(z["rna"], z["atac"])
    for i, m in enumerate(MODALITIES):
        with torch.no_grad():
            x = module.expression(m, streams[m]).double().numpy()
        x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), np.inf)
        x = np.clip(x, -10, 10)
        u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
        exact = u[:, :d] * s[:d]
        block = joint[:, i * d : (i + 1) * d] / weight[:, i : i + 1]
        variance = block.var(0)
        assert np.all(np.diff(variance) <= 1e-3 * variance[0]), variance
        # the same geometry: pairwise distances agree once both are scaled alike
        rows = np.arange(0, data.n_cells, 7)
        mine = np.linalg.norm(block[rows, None] - block[None, rows], axis=-1)
        theirs = np.linalg.norm(exact[rows, None] - exact[None, rows], axis=-1)
        ratio = mine[mine > 0] / theirs[mine > 0]
        assert ratio.std() / ratio.mean() < 0.01, (m, ratio.std() / ratio.mean())


def test_fusion_check_keeps_the_residual_only_if_matching_beats_chance(prepared):
    from dataclasses import replace

    from sci2cl.api import training_summary
    from sci2cl.model.inter import MATCHING_CHANCE

    torch.set_num_threads(1)
    assert SMALL_TRAIN.fusion_check  # on by default
    model, result, data = fit(prepared, SMALL_MODEL, SMALL_TRAIN)
    best = result.history[result.best_epoch - 1]
    assert result.best_validation_mom == pytest.approx(best["val_mom"])
    assert result.fusion_residual_kept == (best["val_mom"] < MATCHING_CHANCE)
    gate = float(model.module.fusion.cross.residual_gate)
    assert gate == (1.0 if result.fusion_residual_kept else 0.0)
    verdict = "kept" if result.fusion_residual_kept else "dropped"
    assert f"cross-attention residual {verdict}" in training_summary(result, data.n_cells)
    # the gate is part of the saved model, so a reloaded model embeds the same way
    reloaded = TrainedModel.from_payload(model.to_payload())
    assert float(reloaded.module.fusion.cross.residual_gate) == gate
    np.testing.assert_allclose(
        embed(reloaded.module, data)["joint"], embed(model.module, data)["joint"], atol=1e-6
    )
    # without the check nothing is tested and the residual stays
    kept, unchecked, _ = fit(prepared, SMALL_MODEL, replace(SMALL_TRAIN, fusion_check=False))
    assert unchecked.fusion_residual_kept is None and not unchecked.fusion_untested
    assert float(kept.module.fusion.cross.residual_gate) == 1.0
    # no held-out cells: nothing to test, the residual stays and the summary says so
    kept, untested, _ = fit(prepared, SMALL_MODEL, replace(SMALL_TRAIN, validation_fraction=0))
    assert untested.fusion_untested and untested.fusion_residual_kept is None
    assert float(kept.module.fusion.cross.residual_gate) == 1.0
    assert "fusion check skipped (no held-out cells)" in training_summary(untested, data.n_cells)
    # one held-out cell has no negatives: MOC/MOM are not scored there (never a loss of 0), so
    # the check has nothing to test and says so
    few = prepared[:20].copy()
    _, one, _ = fit(few, SMALL_MODEL, replace(SMALL_TRAIN, validation_fraction=0.05))
    joint = [h for h in one.history if h["stage"] == "joint"]
    assert joint and all("val_mom" not in h and "val_moc" not in h for h in joint)
    assert one.fusion_untested and one.fusion_residual_kept is None


@pytest.mark.parametrize("released", [False, True])
def test_released_encoders_learn_only_from_reconstruction(trained, released):
    """After the release, MOC and MOM still train the projections and the fusion, but no
    longer reach the encoders; before it, MOC updates the ATAC encoder (RNA stays anchored)."""
    from sci2cl.loader import BatchLoader

    model, _, data = trained
    module = model.module
    batch = next(iter(BatchLoader(data, "cpu", 64)(np.arange(64), 512)))
    module.train()
    module.inter_to_encoders = not released
    try:
        terms = module.loss(batch, full=True)
        module.zero_grad()
        (terms["moc"] + terms["mom"]).backward()
    finally:
        module.inter_to_encoders = True
    touched = {
        name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
        for name, part in [("rna", module.encoders["rna"]), ("atac", module.encoders["atac"]),
                           ("projections", module.projections), ("fusion", module.fusion)]
    }  # fmt: skip
    assert touched == {"rna": False, "atac": not released, "projections": True, "fusion": True}


def test_release_happens_once_held_out_moc_stops_improving(prepared):
    """The trainer releases the encoders at the first joint epoch whose held-out MOC does not
    improve on the best so far, and records that epoch."""
    # without the weight average: with it, held-out MOC keeps improving for 11 joint epochs here
    train = replace(SMALL_TRAIN, max_epochs=12, patience=3, ema_decay=0.0)
    _, result, _ = fit(prepared, SMALL_MODEL, train)
    joint = [h for h in result.history if h["stage"] == "joint"]
    best, expected = float("inf"), 0
    for h in joint:
        if h["val_moc"] < best - train.min_delta:
            best = h["val_moc"]
        else:
            expected = h["epoch"]
            break
    assert expected > 0 and result.encoders_released_epoch == expected


def test_weight_average_follows_its_recurrence_and_swaps_back():
    """The average starts as the weights, then moves by (1 - decay) towards them each update;
    inside ``averaged_weights`` the module holds it, and after (even on error) its own weights."""
    module = torch.nn.Linear(3, 2)
    first = [p.detach().clone() for p in module.parameters()]
    average = update_average(None, module, 0.9)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    average = update_average(average, module, 0.9)
    for a, w in zip(average, first, strict=True):
        torch.testing.assert_close(a, w + 0.1)
    with pytest.raises(RuntimeError), averaged_weights(module, average):
        torch.testing.assert_close(module.weight, first[0] + 0.1)
        raise RuntimeError
    torch.testing.assert_close(module.weight, first[0] + 1.0)


def test_saved_model_holds_the_weight_average(prepared):
    """The model kept is the average at the selected epoch, not the last step's weights: with
    one epoch the two runs take the same steps (the average never feeds back into training), so
    the fitted modules differ only if the kept one is the average."""
    train = replace(SMALL_TRAIN, max_epochs=1, validation_fraction=0.0)
    averaged, _, _ = fit(prepared, SMALL_MODEL, train)
    live, _, _ = fit(prepared, SMALL_MODEL, replace(train, ema_decay=0.0))
    kept = dict(averaged.module.named_parameters())
    differs = [n for n, p in live.module.named_parameters() if not torch.equal(p, kept[n])]
    assert differs


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks")
        + ("uordblks", "fordblks", "keepcost")
    ]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc")
def test_cpu_training_keeps_large_blocks_on_the_heap_instead_of_mapping_them():
    """A CPU step's 100-MB-scale gradients come from malloc's heap, whose freed blocks the next
    step reuses, not from fresh mmap()s that each step page-faults in again. (Counting page
    faults directly is flaky here: the heap takes a few rounds to settle.)"""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    keep_freed_memory()
    block = torch.zeros(64 << 20)  # float32: 256 MiB
    mapped = libc.mallinfo2().hblkhd  # bytes in mmap()ed blocks while it is alive
    del block
    assert mapped < 64 << 20, mapped
