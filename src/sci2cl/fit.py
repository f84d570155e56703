"""From prepared MuData to a trained model: build the dataset, the module, and train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from mudata import MuData

from sci2cl.data import MODALITIES, InputTransform, MultiomeDataset
from sci2cl.embed import TrainedModel
from sci2cl.features import aligned_counts, selected_features
from sci2cl.model import ModelConfig, Sci2clModule
from sci2cl.train import FitResult, TrainConfig, Trainer
from sci2cl.train.trainer import EpochCallback


def _mean_frequency(counts: sp.csr_matrix) -> np.ndarray:
    library = np.asarray(counts.sum(axis=1)).ravel()
    return np.asarray(counts.sum(axis=0)).ravel() / max(float(library.sum()), 1.0)


def fit(
    mdata: MuData,
    model_config: ModelConfig,
    train_config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    checkpoint: Path | None = None,
    resume: Path | None = None,
) -> tuple[TrainedModel, FitResult, MultiomeDataset]:
    """Train scI2CL on the selected features of ``mdata`` (raw counts in ``.X``)."""
    features = selected_features(mdata)
    counts, _ = aligned_counts(mdata, features)
    transforms = {m: InputTransform.fit(counts[m]) for m in MODALITIES}
    data = MultiomeDataset(counts, transforms)
    torch.manual_seed(train_config.seed)  # weight initialisation is part of the seeded run
    module = Sci2clModule(
        {m: len(features[m]) for m in MODALITIES},
        model_config,
        mean_frequency={m: _mean_frequency(counts[m]) for m in MODALITIES},
        mean_library={m: float(counts[m].sum() / max(counts[m].shape[0], 1)) for m in MODALITIES},
    )
    result = Trainer(train_config).fit(module, data, on_epoch, checkpoint, resume)
    trained = TrainedModel(module, features, transforms, train_config.to_dict(), result.history)
    return trained, result, data
