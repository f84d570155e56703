"""Map new cells into a trained model's space: same preparation, same features."""

from __future__ import annotations

import math
from dataclasses import fields

import mudata as md

from sci2cl.data import MODALITIES
from sci2cl.embed import TrainedModel
from sci2cl.features import SELECTED, aligned_counts
from sci2cl.preprocess import PrepareConfig, prepare


def model_prepare_config(trained: TrainedModel) -> PrepareConfig:
    """The QC configuration the training data went through (defaults where unknown)."""
    stored = dict(trained.train_params.get("prepare", {}).get("config", {}) or {})
    values = {}
    for spec in fields(PrepareConfig):
        value = stored.get(spec.name)
        if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
            values[spec.name] = type(spec.default)(value) if spec.default is not None else value
    return PrepareConfig(**values)


def prepare_like_model(mdata: md.MuData, trained: TrainedModel, sample: str) -> md.MuData:
    """Prepared input passes through; raw input gets the model's cell QC."""
    if all(SELECTED in mdata[m].var for m in MODALITIES):
        return mdata
    prepared, _ = prepare(mdata, model_prepare_config(trained), sample)
    return prepared


def counts_for_model(mdata: md.MuData, trained: TrainedModel):
    """Counts in the model's feature order and the number of model features absent per
    modality; no overlap at all in a modality is an error."""
    counts, missing = aligned_counts(mdata, trained.features)
    for m in MODALITIES:
        if missing[m] == len(trained.features[m]):
            raise ValueError(f"no {m} feature of the model is present in the input")
    return counts, missing
