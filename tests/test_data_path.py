"""The packed counts store, batch decoding, feature-subset targets and the batch loader."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sci2cl.data import MODALITIES, InputTransform, MultiomeDataset
from sci2cl.loader import BatchLoader, prefetched
from sci2cl.model.zinb import zinb_log_likelihood
from sci2cl.packed import MAX_STEP, PackedBuilder, PackedCounts


@pytest.fixture(scope="module")
def counts():
    from conftest import SNARE_H5MU

    from sci2cl.io import read_multiome

    mdata = read_multiome(SNARE_H5MU)
    return {m: sp.csr_matrix(mdata[m].X, dtype=np.float32)[:600] for m in MODALITIES}


@pytest.fixture(scope="module")
def data(counts):
    transforms = {m: InputTransform.fit(counts[m]) for m in MODALITIES}
    return MultiomeDataset(counts, transforms)


def test_packed_store_round_trips_real_counts_exactly(counts):
    for m in MODALITIES:
        packed = PackedCounts.from_csr(counts[m])
        back = packed.to_csr()
        assert back.shape == counts[m].shape and (back != counts[m]).nnz == 0
        np.testing.assert_array_equal(packed.library.numpy(), counts[m].sum(axis=1).A1)
        assert packed.counts.dtype == torch.uint8 or counts[m].max() > 255


def test_packed_store_bridges_long_steps_and_widens_count_types():
    rows = np.array([0, 0, 0, 1, 1, 3])
    cols = np.array([0, 700, 2999, 255, 256, 2999])  # steps of 700 and 2299: bridged
    first = sp.csr_matrix((np.array([1, 2, 3, 4, 5, 6.0]), (rows, cols)), shape=(4, 3000))
    second = sp.csr_matrix(np.array([[0, 70000.0] + [0] * 2998]))  # needs int32
    builder = PackedBuilder(3000, 8, np.dtype(np.uint8))
    builder.add(first)
    builder.add(second)
    packed = builder.finish()
    assert packed.counts.dtype == torch.int32 and packed.shape == (5, 3000)
    assert (packed.to_csr() != sp.vstack([first, second])).nnz == 0
    assert int(packed.steps.max()) == MAX_STEP  # bridges were needed
    fractional = PackedCounts.from_csr(first * 0.5)
    assert fractional.counts.dtype == torch.float32
    assert (fractional.to_csr() != first * 0.5).nnz == 0


def test_decoded_inputs_match_the_input_transform(data, counts):
    rows = np.array([7, 3, 599, 0, 42])
    batch = data.batch(rows)
    for m in MODALITIES:
        part = batch[m]
        expected = data.transforms[m].apply(counts[m][rows])
        dense = torch.zeros(len(rows), data.n_features(m))
        cell = torch.repeat_interleave(
            torch.arange(len(rows)),
            torch.diff(part.offsets, append=torch.tensor([len(part.indices)])),
        )
        dense.index_put_((cell, part.indices), part.values, accumulate=True)
        np.testing.assert_allclose(dense.numpy(), expected.toarray(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(part.library.numpy(), counts[m][rows].sum(axis=1).A1)
        assert part.target is None  # encode-only unless a target is asked for


def test_target_is_the_counts_of_a_uniform_feature_subset(data, counts):
    rows = np.arange(40, 72)
    d = data.n_features("atac")
    torch.manual_seed(0)
    target = data.batch(rows, target_features=300).atac.target
    features = target.features.numpy()
    assert target.counts.shape == (32, 300) and len(np.unique(features)) == 300
    np.testing.assert_array_equal(
        target.counts.numpy(), counts["atac"][rows][:, features].toarray()
    )
    everything = data.batch(rows, target_features=d).atac.target
    assert everything.features is None
    np.testing.assert_array_equal(everything.counts.numpy(), counts["atac"][rows].toarray())
    # uniform: every feature is drawn about equally often over many steps
    hits = np.zeros(d)
    for _ in range(400):
        hits[data.batch(rows[:2], target_features=d // 4).atac.target.features.numpy()] += 1
    assert hits.min() > 0 and abs(hits.mean() - 100) < 1e-9 and hits.std() < 15


def test_loader_batches_cover_rows_once_and_prefetching_changes_nothing(data):
    loader = BatchLoader(data, "cpu", batch_size=64)
    rows = np.arange(data.n_cells)
    shuffled = np.random.default_rng(3).permutation(rows)[: 64 * (data.n_cells // 64)]
    batches = list(loader(shuffled, 128))
    seen = np.concatenate([b.index.numpy() for b in batches])
    assert len(seen) == 64 * (data.n_cells // 64) and len(np.unique(seen)) == len(seen)
    plain = [data.batch_from(c, g, loader.scale) for c, g in _gathered(loader, rows)]
    ahead = [data.batch_from(c, g, loader.scale) for c, g in prefetched(_gathered(loader, rows), 2)]
    for a, b in zip(plain, ahead, strict=True):
        for m in MODALITIES:
            assert torch.equal(a[m].indices, b[m].indices) and torch.equal(a[m].values, b[m].values)


def _gathered(loader, rows):
    for start in range(0, len(rows), loader.batch_size):
        chunk = rows[start : start + loader.batch_size]
        yield chunk, {m: loader.stores[m].gather(chunk) for m in MODALITIES}


def test_prefetch_raises_the_producers_error_and_stops_early():
    def broken():
        yield 1
        raise RuntimeError("gather failed")

    with pytest.raises(RuntimeError, match="gather failed"):
        list(prefetched(broken(), 2))
    taken = []
    for item in prefetched(iter(range(1000)), 2):
        taken.append(item)
        if item == 3:
            break
    assert taken == [0, 1, 2, 3]


def test_dense_and_sparse_zinb_agree_with_gradients():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.poisson(0.7, size=(30, 40)).astype(np.float32))
    mu = torch.from_numpy(rng.gamma(2.0, 1.0, size=(30, 40)).astype(np.float32)).requires_grad_()
    theta = torch.from_numpy(rng.gamma(2.0, 2.0, size=40).astype(np.float32)).requires_grad_()
    logits = torch.from_numpy(rng.normal(0, 1, size=(30, 40)).astype(np.float32)).requires_grad_()
    grads = []
    for sparse in (True, False):
        ll = zinb_log_likelihood(x, mu, theta, logits, sparse=sparse)
        grads.append((ll.detach(), *torch.autograd.grad(ll.sum(), (mu, theta, logits))))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
