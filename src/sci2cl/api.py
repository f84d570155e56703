"""From prepared MuData to a trained model: build the dataset, the module, and train."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from mudata import MuData

from sci2cl.align import SELECTED, aligned_counts, selected_features
from sci2cl.data import MODALITIES, InputTransform, MultiomeDataset
from sci2cl.embed import TrainedModel
from sci2cl.model import ModelConfig, Sci2clModule
from sci2cl.preprocess import PrepareConfig, prepare
from sci2cl.samples import COVERAGE
from sci2cl.train import FitResult, TrainConfig, Trainer
from sci2cl.train.trainer import EpochCallback


def _mean_frequency(counts: sp.csr_matrix) -> np.ndarray:
    library = np.asarray(counts.sum(axis=1)).ravel()
    return np.asarray(counts.sum(axis=0)).ravel() / max(float(library.sum()), 1.0)


def sample_codes(mdata: MuData) -> tuple[np.ndarray | None, list[str]]:
    """Integer code of each cell's ``obs['sample']`` and the categories (in order of first
    appearance); no codes for a single sample."""
    if "sample" not in mdata.obs:
        return None, []
    codes, categories = pd.factorize(mdata.obs["sample"].astype(str), sort=False)
    names = [str(c) for c in categories]
    return (codes.astype(np.int64) if len(names) > 1 else None), names


def feature_coverage(
    mdata: MuData, features: dict[str, list[str]], samples: list[str]
) -> dict[str, np.ndarray]:
    """(samples x features) 0/1 coverage of the model features, from combine_samples."""
    order = list(mdata.uns.get("sci2cl", {}).get("combine", {}).get("samples", []))
    out = {}
    for m in MODALITIES:
        var = mdata[m].var_names.astype(str)
        if COVERAGE not in mdata[m].varm or not set(samples) <= set(order):
            continue
        rows = pd.Index(var).get_indexer(pd.Index(features[m]))
        cover = np.asarray(mdata[m].varm[COVERAGE])[rows][:, [order.index(s) for s in samples]]
        out[m] = cover.T.astype(np.float32)
    return out


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
    codes, samples = sample_codes(mdata)
    data = MultiomeDataset(counts, transforms, codes)
    if codes is not None:
        model_config = replace(model_config, n_samples=len(samples))
    torch.manual_seed(train_config.seed)  # weight initialisation is part of the seeded run
    module = Sci2clModule(
        {m: len(features[m]) for m in MODALITIES},
        model_config,
        mean_frequency={m: _mean_frequency(counts[m]) for m in MODALITIES},
        mean_library={m: float(counts[m].sum() / max(counts[m].shape[0], 1)) for m in MODALITIES},
        coverage=feature_coverage(mdata, features, samples) if codes is not None else None,
    )
    result = Trainer(train_config).fit(module, data, on_epoch, checkpoint, resume)
    trained = TrainedModel(
        module, features, transforms, train_config.to_dict(), result.history, samples
    )
    return trained, result, data


def model_prepare_config(trained: TrainedModel) -> PrepareConfig:
    """The QC configuration the training data went through (defaults where unknown)."""
    stored = dict(trained.train_params.get("prepare", {}).get("config", {}) or {})
    values = {}
    for spec in fields(PrepareConfig):
        value = stored.get(spec.name)
        if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
            values[spec.name] = type(spec.default)(value) if spec.default is not None else value
    return PrepareConfig(**values)


def prepare_like_model(mdata: MuData, trained: TrainedModel, sample: str) -> MuData:
    """Prepared input passes through; raw input gets the model's cell QC."""
    if all(SELECTED in mdata[m].var for m in MODALITIES):
        return mdata
    prepared, _ = prepare(mdata, model_prepare_config(trained), sample)
    return prepared
