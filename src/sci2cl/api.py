"""The Python API (see README): one model class, scvi-tools style, that the CLI uses too."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from mudata import MuData

from sci2cl import preprocess
from sci2cl.align import SELECTED, aligned_counts, query_counts, selected_features
from sci2cl.data import MODALITIES, InputTransform, MultiomeDataset
from sci2cl.embed import TrainedModel, embed
from sci2cl.errors import InputError, Sci2clError, Sci2clWarning
from sci2cl.io import default_sample_name, multiome_from_mudata
from sci2cl.io import write as outputs
from sci2cl.model import ModelConfig, Sci2clModule
from sci2cl.model.inter import MATCHING_CHANCE
from sci2cl.preprocess import PrepareConfig, PrepareReport
from sci2cl.samples import COVERAGE, combine_samples
from sci2cl.train import FitResult, TrainConfig, Trainer
from sci2cl.train.trainer import EpochCallback


class SCI2CL:
    """scI2CL joint embeddings of paired RNA + ATAC cells: setup, train, embed, save, load and
    map new (query) cells into the same space.

    ``mdata`` holds the cells the model embeds (prepared: QC-filtered, features selected, raw
    counts); ``trained`` the weights once trained or loaded.
    """

    def __init__(
        self, mdata: MuData | None, config: ModelConfig, trained: TrainedModel | None = None
    ) -> None:
        self.mdata = mdata
        self.config = config
        self.trained = trained
        self.params: dict = dict(trained.train_params) if trained else {}
        self.result: FitResult | None = None  # set by train()
        self.reports: list[PrepareReport] = []  # what setup's QC removed, per sample
        self.source: Path | None = None  # the model file, when loaded
        self._data: MultiomeDataset | None = None  # the cells of mdata, as the model sees them
        self._device = "auto"  # for embedding: where the model trained, else auto
        self._embeddings: dict[str, np.ndarray] | None = None

    # --- setup and training ----------------------------------------------------------------

    @classmethod
    def setup(
        cls,
        mdata: MuData | Sequence[MuData],
        sample: str | Sequence[str] | None = None,
        prepare: PrepareConfig | None = None,
        genes: str = "union",
        fragments: Sequence[str | Path] | None = None,
        config: ModelConfig | None = None,
        **model_options,
    ) -> SCI2CL:
        """A model for the cells of ``mdata`` (``rna`` + ``atac`` raw counts; a list: several
        samples trained into one space). Each MuData not yet prepared is QC-filtered and its
        features selected (``prepare``; sample names from ``sample``, else from the input
        file). Several are combined: genes of any (``union``) or all (``common``) samples,
        peaks merged by overlap, recounted from ``fragments`` when given (one per sample).
        ``model_options``: fields of :class:`ModelConfig` (e.g. ``latent_dim``)."""
        samples = [mdata] if isinstance(mdata, MuData) else list(mdata)
        names = [sample] * len(samples) if sample is None or isinstance(sample, str) else sample
        if len(names) != len(samples):
            raise ValueError(f"{len(names)} sample names for {len(samples)} MuData objects")
        prepared = [
            _prepared(one, prepare or PrepareConfig(), name)
            for one, name in zip(samples, names, strict=True)
        ]
        paths = [Path(f) for f in fragments] if fragments else None
        model = cls(
            combine_samples([one for one, _ in prepared], paths, genes),
            replace(config or ModelConfig(), **model_options),
        )
        model.reports = [report for _, report in prepared if report is not None]
        return model

    def train(
        self,
        config: TrainConfig | None = None,
        on_epoch: EpochCallback | None = None,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        **train_options,
    ) -> FitResult:
        """Train on ``self.mdata``; ``train_options``: fields of :class:`TrainConfig` (e.g.
        ``max_epochs``, ``device``). With ``checkpoint``, a resumable checkpoint is written
        after every epoch, and ``resume`` continues from it when it exists."""
        mdata = self._cells()
        config = replace(config or TrainConfig(), **train_options)
        checkpoint = Path(checkpoint) if checkpoint else None
        resume_from = checkpoint if resume else None
        self.trained, result, self._data = fit(
            mdata, self.config, config, on_epoch, checkpoint, resume_from
        )
        self.config, self.result, self._embeddings = self.trained.module.config, result, None
        self._device = config.device
        self.params = self.trained.train_params = _run_params(mdata, self.trained, config, result)
        return result

    # --- embeddings ------------------------------------------------------------------------

    def get_latent_representation(
        self, modality: str = "joint", batch_size: int = 1024, device: str | None = None
    ) -> np.ndarray:
        """Embedding of the cells of ``self.mdata`` (float32, cells x dims): ``joint`` (2 x
        ``joint_components``) or one modality's latent (``rna`` / ``atac``). Batch-independent."""
        if self._embeddings is None:
            self._cells()
            self._embeddings = embed(
                self._model().module, self._data, batch_size, device or self._device
            )
        return self._embeddings[modality]

    def map_query(self, mdata: MuData, sample: str | None = None) -> SCI2CL:
        """This model for new cells (e.g. another sample): raw input gets the model's QC,
        prepared input is used as is; genes are matched by name, peaks by name or genomic
        overlap; model features absent from the input count zero (with a warning)."""
        trained = self._model()
        mdata, _ = _prepared(mdata, _model_prepare_config(trained), sample)
        try:
            counts, missing = query_counts(mdata, trained.features)
        except ValueError as err:
            raise InputError(_origin(mdata), str(err)) from None
        for m, n in missing.items():
            if n:
                total = len(trained.features[m])
                message = f"{n} of {total} model {m} features absent; treated as zeros"
                warnings.warn(message, Sci2clWarning, stacklevel=2)
        query = SCI2CL(mdata, self.config, trained)
        query._data = trained.dataset(counts)
        if self.source is not None:
            query.params["embedded_with"] = str(self.source)
        return query

    def to_mudata(self) -> MuData:
        """Copy of ``self.mdata`` with the embeddings (``obsm['X_sci2cl']``, ``X_sci2cl_rna``,
        ``X_sci2cl_atac``), Leiden clusters of the joint graph (``obs['sci2cl_leiden']``), its
        UMAP (``obsm['X_umap']``), parameters and loss history (``uns['sci2cl']``)."""
        self.get_latent_representation()
        return outputs.annotate(self._cells(), self._embeddings, self.params, self._history())

    # --- files -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the model file (weights, configuration, feature lists; see docs/output.md)."""
        path = Path(path)
        with outputs.staged_outputs({"model": path}) as temp:
            self._model().save(temp["model"])
        return path

    @classmethod
    def load(cls, path: str | Path) -> SCI2CL:
        """A model saved by :meth:`save` (or ``sci2cl train``), ready for :meth:`map_query`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "no such file")
        trained = TrainedModel.load(path)  # weights_only: no code runs; InputError if bad
        model = cls(None, trained.module.config, trained)
        model.source = path
        return model

    def write(self, prefix: str | Path, figures: bool = True) -> list[Path]:
        """Write ``prefix`` + the outputs (docs/output.md): after training the model file first,
        then the embeddings table, MuData and loss history together, then the figures (best
        effort: one that fails warns). Mapped cells: embeddings table and MuData only."""
        trained_here = self.result is not None
        paths = outputs.output_paths(prefix, trained_here, figures)
        outputs.check_writable(paths.values())
        written = [self.save(paths[outputs.MODEL])] if trained_here else []
        results = {s: paths[s] for s in outputs.RESULTS if s in paths}
        try:
            annotated = self.to_mudata()
            outputs.write_results(annotated, self._history(), results)
        except Exception as err:
            if written:
                err.add_note(f"the trained model was saved to {written[0]}")
            raise
        figure_paths = {s: paths[s] for s in outputs.FIGURES if s in paths}
        return [
            *written,
            *results.values(),
            *outputs.write_figures(annotated, self._history(), figure_paths),
        ]

    # --- internals -------------------------------------------------------------------------

    def _model(self) -> TrainedModel:
        if self.trained is None:
            raise Sci2clError("the model is not trained yet: call train() first")
        return self.trained

    def _cells(self) -> MuData:
        if self.mdata is None:
            raise Sci2clError("no cells: use map_query(mdata) for cells of a loaded model")
        return self.mdata

    def _history(self) -> list[dict]:
        return self.trained.history if self.trained else []


def is_prepared(mdata: MuData) -> bool:
    """Whether ``mdata`` went through :func:`sci2cl.preprocess.prepare` (features selected)."""
    return all(SELECTED in mdata[m].var for m in MODALITIES)


def _origin(mdata: MuData) -> str:
    """The file ``mdata`` was read from, for messages."""
    return str(mdata.uns.get("files", {}).get("input", "the MuData"))


def _prepared(
    mdata: MuData, config: PrepareConfig, sample: str | None
) -> tuple[MuData, PrepareReport | None]:
    """``mdata`` as is when prepared, else its cells QC-filtered and features selected (sample
    name ``sample``, else the one implied by the file it was read from, else ``sample``)."""
    if is_prepared(mdata):
        return mdata, None
    source = mdata.uns.get("files", {}).get("input")
    name = sample or (default_sample_name(source) if source else "sample")
    return preprocess.prepare(multiome_from_mudata(mdata, _origin(mdata)), config, name)


def _run_params(
    mdata: MuData, trained: TrainedModel, config: TrainConfig, result: FitResult
) -> dict:
    """What a trained model records about its run (saved with it and in every output)."""
    params = {
        "model": trained.module.config.to_dict(),
        "train": config.to_dict(),
        "n_features": trained.module.n_features,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "prepare": dict(mdata.uns.get("sci2cl", {}).get("prepare", {})),
    }
    if result.fusion_residual_kept is not None:
        params["fusion_check"] = {
            "tested": True,
            "residual_kept": result.fusion_residual_kept,
            "held_out_mom": result.best_validation_mom,
            "chance": MATCHING_CHANCE,
        }
    elif result.fusion_untested:
        params["fusion_check"] = {"tested": False, "residual_kept": True}
    return params


def training_summary(result: FitResult, n_cells: int) -> str:
    """One line on a finished training run (epochs, time, best validation loss, fusion)."""
    early = ", stopped early" if result.stopped_early else ""
    line = (
        f"trained {result.epochs_run} epochs{early} on {n_cells} cells in "
        f"{result.wall_time_s:.1f}s ({result.device}); best validation loss "
        f"{result.best_validation_loss:.4f} at epoch {result.best_epoch}"
    )
    if result.fusion_untested:
        return f"{line}; fusion check skipped (no held-out cells): cross-attention residual kept"
    if result.fusion_residual_kept is None:
        return line
    verdict = "kept" if result.fusion_residual_kept else "dropped"
    return (
        f"{line}; cross-attention residual {verdict} (held-out MOM loss "
        f"{result.best_validation_mom:.3f} vs chance {MATCHING_CHANCE:.3f})"
    )


# --- building and training the module -----------------------------------------------------


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
    if not set(samples) <= set(order):
        return {}
    columns = [order.index(s) for s in samples]
    out = {}
    for m in (m for m in MODALITIES if COVERAGE in mdata[m].varm):
        rows = pd.Index(mdata[m].var_names.astype(str)).get_indexer(pd.Index(features[m]))
        out[m] = np.asarray(mdata[m].varm[COVERAGE])[rows][:, columns].T.astype(np.float32)
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
        if model_config.batch_covariate:  # one decoder per sample: no one expression space
            model_config = replace(model_config, joint_components=0)  # (docs/method.md)
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


def _model_prepare_config(trained: TrainedModel) -> PrepareConfig:
    """The QC configuration the training data went through (defaults where unknown)."""
    stored = dict(trained.train_params.get("prepare", {}).get("config", {}) or {})
    values = {}
    for spec in fields(PrepareConfig):
        value = stored.get(spec.name)
        if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
            values[spec.name] = type(spec.default)(value) if spec.default is not None else value
    return PrepareConfig(**values)
