"""Loss functions and building blocks of the scI2CL module."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
import torch

from sci2cl.model.autoencoder import masked_views
from sci2cl.model.inter import (
    MATCHING_CHANCE,
    PairFusion,
    hard_negatives,
    info_nce,
    matching_loss,
)
from sci2cl.model.intra import consistency_loss
from sci2cl.model.zinb import zinb_log_likelihood


def _scipy_zinb_logpmf(x, mu, theta, pi):
    p = theta / (theta + mu)
    nb = st.nbinom.logpmf(x, theta, p)
    zero = np.log(pi + (1 - pi) * np.exp(st.nbinom.logpmf(0, theta, p)))
    return np.where(x == 0, zero, np.log1p(-pi) + nb)


def test_zinb_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, size=(50, 20)).astype(np.float32) * (rng.random((50, 20)) > 0.4)
    mu = rng.gamma(2.0, 1.5, size=(50, 20)).astype(np.float32) + 1e-3
    theta = rng.gamma(2.0, 2.0, size=20).astype(np.float32) + 0.05
    logits = rng.normal(0, 2, size=(50, 20)).astype(np.float32)
    ours = zinb_log_likelihood(
        torch.from_numpy(x), torch.from_numpy(mu), torch.from_numpy(theta), torch.from_numpy(logits)
    ).numpy()
    pi = 1 / (1 + np.exp(-logits.astype(np.float64)))
    ref = _scipy_zinb_logpmf(x, mu.astype(np.float64), theta.astype(np.float64), pi)
    np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=2e-4)


def test_zinb_gradients_finite_on_sparse_counts():
    x = torch.tensor([[0.0, 3.0, 0.0, 120.0]])
    mu = torch.tensor([[0.01, 2.0, 50.0, 100.0]], requires_grad=True)
    theta = torch.tensor([0.5, 1.0, 2.0, 10.0], requires_grad=True)
    logits = torch.zeros(1, 4, requires_grad=True)
    (-zinb_log_likelihood(x, mu, theta, logits).sum()).backward()
    for t in (mu, theta, logits):
        assert torch.isfinite(t.grad).all()


def test_info_nce_lower_for_aligned_than_shuffled_pairs():
    torch.manual_seed(0)
    a = torch.randn(128, 16)
    b = a + 0.1 * torch.randn(128, 16)
    aligned = info_nce(a, b, temperature=0.2)
    shuffled = info_nce(a, b[torch.randperm(128)], temperature=0.2)
    assert aligned < 0.5 * shuffled
    assert shuffled > np.log(128) * 0.8  # near chance for unrelated pairs


def test_hard_negatives_never_pick_the_true_partner_and_prefer_similar_cells():
    torch.manual_seed(0)
    n = 64
    similarity = torch.full((n, n), -5.0)
    similarity.fill_diagonal_(10.0)  # the true partner is the most similar
    partner = (torch.arange(n) + 1) % n
    similarity[torch.arange(n), partner] = 5.0  # one clearly similar non-partner
    picks = hard_negatives(similarity)
    assert (picks != torch.arange(n)).all()
    assert (picks == partner).float().mean() > 0.9


def test_matching_chance_is_the_loss_of_an_uninformative_classifier():
    torch.manual_seed(0)
    fusion = PairFusion(8, 2, 2)
    last = fusion.match_head[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)  # logits 0: p(pair) = 1/2 for every pair
    z_rna, z_atac, depth = torch.randn(32, 8), torch.randn(32, 8), torch.randn(32, 2)
    loss = matching_loss(fusion, z_rna, z_atac, depth, torch.randn(32, 32))
    assert float(loss) == pytest.approx(MATCHING_CHANCE, abs=1e-6)


def test_closed_residual_gate_makes_the_streams_the_latents():
    torch.manual_seed(0)
    fusion = PairFusion(8, 2, 2)
    for layer in fusion.cross.back.values():  # as if trained: a non-zero residual
        torch.nn.init.normal_(layer.weight)
    z_rna, z_atac = torch.randn(16, 8), torch.randn(16, 8)
    open_ = fusion.cross(z_rna, z_atac)
    assert not torch.allclose(open_["rna_to_atac"], z_rna)
    fusion.cross.residual_gate.fill_(0.0)
    closed = fusion.cross(z_rna, z_atac)
    assert torch.equal(closed["rna_to_atac"], z_rna) and torch.equal(closed["atac_to_rna"], z_atac)


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.6])
def test_mask_rate_is_respected_per_entry(rate):
    torch.manual_seed(0)
    values = torch.rand(20000) + 0.5
    views = masked_views(values, n_views=4, mask_rate=rate).view(4, -1)
    assert views.shape == (4, 20000)
    masked = (views == 0).float().mean().item()
    assert abs(masked - rate) < 0.01
    # masks differ between views (independent draws per view and entry)
    if rate > 0:
        assert not torch.equal(views[0] == 0, views[1] == 0)
    kept = views != 0
    assert torch.equal(views[kept], values.repeat(4, 1)[kept])


def test_consistency_loss_is_scale_free_and_stops_gradient_into_target():
    local = torch.randn(8, 16, requires_grad=True)
    target = torch.randn(8, 16, requires_grad=True)
    loss = consistency_loss(local, target)
    loss.backward()
    assert target.grad is None and local.grad is not None
    assert torch.isclose(consistency_loss(local * 7, target * 0.1), loss, rtol=1e-2)
