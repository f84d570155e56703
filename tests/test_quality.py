"""Quality floor (issue 12): the defaults, trained with a fixed seed on the committed real
SNARE-seq subset, must keep their Leiden NMI. The floors sit about 0.03 below what the defaults
measured when they were set (docs/method.md), so a regression in embedding quality fails here
while run-to-run noise on this machine (bit-identical for a seed on CPU) does not."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SNARE_H5MU, SNARE_LABELS

from sci2cl import SCI2CL
from sci2cl.evaluate import EvaluationConfig, evaluate_embedding

# measured with the defaults (weight average 0.99) on 2026-12-01, seed 0, one thread
# (docs/method.md "Quality floor"): coarse Leiden NMI (without Mis) 0.618 for the joint, 0.619
# for its RNA latent; with the expression-space joint (2026-12-07) 0.6185 and 0.619
FLOOR_JOINT = 0.588
FLOOR_RNA_GAP = 0.03  # the joint may not fall more than this below its own RNA latent


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)  # the floor was measured so; other thread counts round differently
    model = SCI2CL.setup(md.read_h5mu(SNARE_H5MU), sample="snare")
    model.train(seed=0, device="cpu")
    labels = pd.read_csv(SNARE_LABELS, index_col="barcode")["cluster (remapped)"]
    labels = labels.reindex(model.mdata.obs_names).to_numpy().astype(str)
    return model, labels


def _leiden_nmi(embedding: np.ndarray, labels: np.ndarray) -> float:
    keep = labels != "Mis"
    scores = evaluate_embedding(
        embedding[keep], labels[keep], EvaluationConfig(seeds=(0, 1, 2), paper_protocol=False)
    )
    return scores["leiden_nmi"]


def test_defaults_keep_their_quality_floor(trained):
    model, labels = trained
    joint = _leiden_nmi(model.get_latent_representation(), labels)
    rna = _leiden_nmi(model.get_latent_representation("rna"), labels)
    assert joint >= FLOOR_JOINT, (joint, rna)
    assert joint >= rna - FLOOR_RNA_GAP, (joint, rna)
