"""Training, determinism, batch-independent inference and the model file round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SMALL_MODEL, SMALL_TRAIN

from sci2cl.api import fit
from sci2cl.data import MODALITIES
from sci2cl.embed import TrainedModel, embed
from sci2cl.preprocess import PrepareConfig, prepare


@pytest.fixture(scope="module")
def prepared():
    from conftest import SNARE_H5MU

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


def test_model_payload_round_trip(trained, tmp_path):
    model, _, data = trained
    path = tmp_path / "m.pt"
    torch.save(model.to_payload(), path)
    loaded = TrainedModel.from_payload(torch.load(path, weights_only=False))
    assert loaded.features == model.features
    np.testing.assert_allclose(
        embed(model.module, data)["joint"],
        embed(loaded.module, loaded.dataset(data.counts))["joint"],
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize("val_mom, kept", [(0.52, True), (0.75, False)])
def test_fusion_check_reads_the_selected_epoch(val_mom, kept):
    from sci2cl.model import Sci2clModule
    from sci2cl.train.trainer import FitResult, Trainer, _State

    module = Sci2clModule({"rna": 5, "atac": 7}, SMALL_MODEL)
    later = 0.75 if kept else 0.52  # epochs after the selected one must not decide
    history = [{"val_mom": 0.0}, {"val_mom": val_mom}, {"val_mom": later}]
    result = FitResult()
    Trainer._check_fusion(module, _State(epoch=3, best_epoch=2, history=history), result)
    assert result.fusion_residual_kept is kept and result.best_validation_mom == val_mom
    assert float(module.fusion.cross.residual_gate) == float(kept)


def test_format_1_model_loads_with_its_residual_on(trained):
    model, _, data = trained
    payload = model.to_payload()
    assert payload["format"] == "sci2cl-model/2"
    reference = TrainedModel.from_payload(payload)
    reference.module.fusion.cross.residual_gate.fill_(1.0)  # what a /1 model always did
    expected = embed(reference.module, data)["joint"]
    payload["format"] = "sci2cl-model/1"
    payload["state_dict"] = {
        k: v.clone() for k, v in payload["state_dict"].items() if not k.endswith("residual_gate")
    }
    loaded = TrainedModel.from_payload(payload)
    np.testing.assert_allclose(embed(loaded.module, data)["joint"], expected, atol=1e-6)
    payload["format"] = "sci2cl-model/0"
    with pytest.raises(ValueError, match="not a sci2cl model"):
        TrainedModel.from_payload(payload)


def test_checkpoint_resume_continues_training(prepared, tmp_path):
    from dataclasses import replace

    ckpt = tmp_path / "run.ckpt"
    fit(prepared, SMALL_MODEL, replace(SMALL_TRAIN, max_epochs=2), checkpoint=ckpt)
    _, resumed, _ = fit(prepared, SMALL_MODEL, SMALL_TRAIN, checkpoint=ckpt, resume=ckpt)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert resumed.epochs_run == 3


def test_joint_blocks_are_standardised_and_weighted_by_counts(trained):
    model, _, data = trained
    module = model.module
    d = module.config.latent_dim
    out = embed(module, data)
    half = module.config.joint_half_counts
    library = np.stack([np.asarray(data.counts[m].sum(axis=1)).ravel() for m in MODALITIES], 1)
    reliability = library / (library + half)
    weight = reliability / reliability.max(axis=1, keepdims=True)
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
